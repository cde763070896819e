"""QIDO-RS over real HTTP, with the ``dicomweb-client`` library as a third-party client would
use it, on studies that arrived by C-STORE: matching, paging, includefield, tokens, scope,
bad input and the access audit."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from requests.exceptions import HTTPError
from sqlalchemy import select, update

from pacs.audit_chain import accesses
from pacs.identity.users import find_user, revoke_token
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, ApiToken
from pacs.index.types import utcnow
from tests.dicomweb.conftest import Web
from viewer.app import create_app


def _uids(results: list[dict[str, Any]], tag: str = "0020000D") -> set[str]:
    return {r[tag]["Value"][0] for r in results}


def test_search_matches_and_answers_chinese_names_intact(web: Web) -> None:
    client = web.client("admin")
    every = client.search_for_studies()
    assert _uids(every) == {ds.StudyInstanceUID for ds in web.studies.values()}
    chinese = web.studies["fudong_chinese"]
    found = client.search_for_studies(search_filters={"PatientName": "王^小明"})
    assert _uids(found) == {chinese.StudyInstanceUID}
    assert found[0]["00100010"]["Value"][0]["Alphabetic"] == "王^小明"  # UTF-8, not '^' or mojibake
    assert found[0]["00201208"]["Value"] == [3] and found[0]["00201206"]["Value"] == [1]
    assert found[0]["00080061"]["Value"] == ["CT"]
    assert found[0]["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{chinese.StudyInstanceUID}")
    # Wildcards; case-insensitive for Latin; any component group of a name may match.
    assert _uids(client.search_for_studies(search_filters={"PatientName": "王*"})) == {
        chinese.StudyInstanceUID,
        web.studies["anfeng"].StudyInstanceUID,
    }
    latin = web.studies["fudong_latin"].StudyInstanceUID
    assert _uids(client.search_for_studies(search_filters={"PatientName": "zhang*"})) == {latin}
    assert _uids(client.search_for_studies(search_filters={"PatientName": "张^三"})) == {latin}
    assert _uids(client.search_for_studies(search_filters={"00100010": "?HANG^SAN"})) == {latin}
    # Date ranges, UID lists, modalities.
    assert _uids(client.search_for_studies(search_filters={"StudyDate": "20250101-"})) == {
        chinese.StudyInstanceUID,
        web.studies["anfeng"].StudyInstanceUID,
    }
    assert _uids(client.search_for_studies(search_filters={"StudyDate": "-20241231"})) == {latin}
    uid_list = f"{latin},{chinese.StudyInstanceUID}"
    assert _uids(client.search_for_studies(search_filters={"StudyInstanceUID": uid_list})) == {
        latin,
        chinese.StudyInstanceUID,
    }
    assert len(client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})) == 3
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"}) == []
    assert client.search_for_studies(search_filters={"PatientID": "no-such-id"}) == []


def test_series_and_instances_paging_and_includefield(web: Web) -> None:
    client = web.client("fudong")
    chinese = web.studies["fudong_chinese"]
    series = client.search_for_series(chinese.StudyInstanceUID)
    assert _uids(series, "0020000E") == {chinese.SeriesInstanceUID}
    assert series[0]["00201209"]["Value"] == [3]
    instances = client.search_for_instances(chinese.StudyInstanceUID, chinese.SeriesInstanceUID)
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 2, 3]
    page = client.search_for_instances(chinese.StudyInstanceUID, limit=2, offset=2)
    assert [i["00200013"]["Value"][0] for i in page] == [3]
    assert len(client.search_for_instances()) == 4  # all of Fudong's, none of Anfeng's
    # includefield: a named attribute, and all, from the stored header (not the objects).
    named = client.search_for_studies(
        search_filters={"StudyInstanceUID": chinese.StudyInstanceUID}, fields=["Manufacturer", "00180050"]
    )
    assert named[0]["00080070"]["Value"] == [chinese.Manufacturer]
    assert named[0]["00180050"]["Value"] == [float(chinese.SliceThickness)]
    # Asking for what the study level already answers (StudyDescription) with something it does
    # not: the first from the index, the second from the header, each once.
    mixed = client.search_for_studies(
        search_filters={"StudyInstanceUID": chinese.StudyInstanceUID}, fields=["StudyDescription", "Manufacturer"]
    )
    assert mixed[0]["00081030"] == named[0]["00081030"] and mixed[0]["00080070"]["Value"] == [chinese.Manufacturer]
    only_indexed = client.search_for_studies(
        search_filters={"StudyInstanceUID": chinese.StudyInstanceUID}, fields=["00081030"]
    )
    assert only_indexed[0]["00081030"] == named[0]["00081030"] and "00080070" not in only_indexed[0]
    everything = web.get(
        f"/studies/{chinese.StudyInstanceUID}/instances", who="fudong", params={"includefield": "all"}
    ).json()
    assert everything[0]["00080080"]["Value"] == [chinese.InstitutionName]  # Chinese text intact
    assert "7FE00010" not in everything[0]


def test_site_tokens_see_only_their_site(web: Web) -> None:
    fudong_study = web.studies["fudong_chinese"]
    anfeng = web.client("anfeng")
    assert _uids(anfeng.search_for_studies()) == {web.studies["anfeng"].StudyInstanceUID}
    assert anfeng.search_for_studies(search_filters={"PatientName": "王^小明"}) == []
    assert len(anfeng.search_for_series(search_filters={"Modality": "CT"})) == 1
    for path in (
        f"/studies/{fudong_study.StudyInstanceUID}/series",
        f"/studies/{fudong_study.StudyInstanceUID}/instances",
        f"/studies/{fudong_study.StudyInstanceUID}/series/{fudong_study.SeriesInstanceUID}/instances",
    ):
        hidden = web.get(path, who="anfeng")
        unknown = web.get(path.replace(fudong_study.StudyInstanceUID, "1.2.3.4"), who="anfeng")
        assert hidden.status_code == unknown.status_code == 404, path  # no existence leak
    with pytest.raises(HTTPError):
        anfeng.search_for_series(fudong_study.StudyInstanceUID)
    # Readers see studies routed to them, which arrives with the worklist (issue D): none yet.
    assert web.client("reader").search_for_studies() == []


def test_tokens_are_required_and_checked(web: Web) -> None:
    missing = web.get("/studies", who=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert "yunying token create" in missing.json()["detail"]
    wrong = web.get("/studies", who=None, headers={"Authorization": "Bearer yy_not-a-token"})
    assert wrong.status_code == 401
    services = web.fixture.services
    with transaction(services.sessions) as session:
        row = session.scalars(select(ApiToken).where(ApiToken.user_id == find_user(session, "anfeng").id)).one()
        revoke_token(session, row.id)
        fudong = session.scalars(select(ApiToken).where(ApiToken.user_id == find_user(session, "fudong").id)).one()
        session.execute(
            update(ApiToken).where(ApiToken.id == fudong.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert web.get("/studies", who="anfeng").status_code == 401
    assert web.get("/studies", who="fudong").status_code == 401
    assert web.get("/studies", who="admin").status_code == 200
    services.audit.flush()  # the use is recorded by the access log's writer, off the request
    with transaction(services.sessions) as session:
        used = session.scalars(select(ApiToken).where(ApiToken.user_id == find_user(session, "admin").id)).one()
        assert used.last_used_at is not None
        assert all(t.token_sha256 != web.tokens["admin"] for t in session.scalars(select(ApiToken)))


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"PatientWeight": "70"}, 400, "not a matching key"),
        ({"NoSuchKeyword": "x"}, 400, "neither a DICOM keyword"),
        ({"StudyDate": "2025-04-05"}, 400, "YYYYMMDD"),
        ({"limit": "ten"}, 400, "whole number"),
        ({"Modality": "CT"}, 400, "series-level key"),
    ],
)
def test_bad_queries_are_refused_clearly(web: Web, params: dict[str, str], status: int, message: str) -> None:
    answer = web.get("/studies", params=params)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text


def test_ignored_parameters_and_unacceptable_media(web: Web) -> None:
    fuzzy = web.get("/studies", params={"fuzzymatching": "true", "limit": "5000"})
    assert fuzzy.status_code == 200
    assert fuzzy.headers["content-type"].startswith("application/dicom+json")
    assert "fuzzymatching is not supported" in fuzzy.headers["warning"]
    assert "limit 5000 is above the maximum" in fuzzy.headers["warning"]
    refused = web.get("/studies", headers={"Accept": "image/png"})
    assert refused.status_code == 406 and "application/dicom+json" in refused.json()["detail"]


def test_every_search_is_audited(web: Web) -> None:
    chinese = web.studies["fudong_chinese"]
    web.client("fudong").search_for_series(chinese.StudyInstanceUID)
    web.fixture.services.audit.flush()
    with transaction(web.fixture.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(accesses()).order_by(AccessRecord.id)).all()
    assert [(r.username, r.role, r.action, r.study_uid, r.outcome) for r in records] == [
        ("fudong", "site", "search", chinese.StudyInstanceUID, "success")
    ]
    assert records[0].source == "127.0.0.1" and records[0].detail["answered"] == 1


def test_every_dicomweb_route_requires_a_token(web: Web) -> None:
    """Route coverage: a /dicomweb route added without the auth dependency fails here — both in
    the OpenAPI description (every operation declares the bearer scheme) and over HTTP (401)."""
    schema = create_app(web.fixture.services).openapi()
    paths = {path: operations for path, operations in schema["paths"].items() if path.startswith("/dicomweb")}
    assert len(paths) >= 20
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert {"HTTPBearer": []} in operation.get("security", []), f"{method.upper()} {path} is not authenticated"
            assert method in {"get", "post"}, "a new method: extend this test's request below"
            concrete = re.sub(r"\{[a-z_]+\}", "1", path)
            answer = httpx.request(method, f"{web.url}{concrete}", content=b"--x--\r\n", timeout=10)
            assert answer.status_code == 401, f"{method.upper()} {path}"
