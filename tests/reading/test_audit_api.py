"""The access audit over HTTP and the command line (issue E): a study a reader viewed shows up in
the QA's search for its patient, an administrative change shows who made it and from where,
QA staff see their consortium only, bad parameters get a 422 — and ``yunying audit verify``
exits 1 once a record is edited or deleted in the database."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from pacs.audit_chain import AuditKey, seal_all
from pacs.index.db import login, transaction
from pacs.index.models import AccessRecord, Study
from tests.conftest import receiver_env, yunying
from tests.reading.audit_api import Api, audit_api
from tests.reading.world import World


@pytest.fixture
def api(make_world: Callable[..., World], world_backend: str) -> Iterator[Api]:
    with audit_api(make_world(world_backend), readers=("li",)) as served_api:
        yield served_api


def test_a_viewed_study_and_an_admin_change_show_up_in_the_audit_search(api: Api) -> None:
    uid = api.world.ingest_study()
    with transaction(api.world.services.sessions) as session:
        patient_id = session.scalars(select(Study.patient_id).where(Study.study_uid == uid)).one()
    assert api.get("li", f"/dicomweb/studies/{uid}/metadata").status_code == 200
    added = httpx.post(
        f"{api.url}/api/admin/sites",
        headers={"Authorization": f"Bearer {api.tokens['admin']}"},
        json={"consortium": "Dongtai", "name": "Touzao", "tier": "village"},
        timeout=30,
    )
    assert added.status_code == 201, added.text
    api.world.services.audit.flush()

    found = api.get("qa", "/api/audit", patient_id=patient_id)
    assert found.status_code == 200, found.text
    opened = [r for r in found.json()["records"] if r["action"] == "metadata"]
    assert [(r["username"], r["role"], r["study_uid"], r["source"], r["outcome"]) for r in opened] == [
        ("li", "reader", uid, "127.0.0.1", "success")
    ]
    change = api.get("qa", "/api/audit", action="site.created").json()["records"]
    newest = change[0]  # the world's own sites were made by the set-up, as from the command line
    assert (newest["username"], newest["role"], newest["source"], newest["detail"]) == (
        "admin",
        "admin",
        "127.0.0.1",
        {"name": "Touzao", "tier": "village"},
    )
    assert {r["username"] for r in change[1:]} == {"cli:" + login()}
    # Another consortium's QA sees none of it; a reader may not search at all.
    assert api.get("qa-xiyang", "/api/audit", patient_id=patient_id).json()["records"] == []
    assert api.get("li", "/api/audit", patient_id=patient_id).status_code == 403

    # Sealed, then exported as JSON lines with each record's place in the chain.
    seal_all(api.world.services.sessions, AuditKey.from_settings(api.world.services.settings))
    exported = api.get("qa", "/api/audit/export", patient_id=patient_id)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [line["action"] for line in lines] == ["metadata"] and lines[0]["chain_seq"] >= 1
    # Searching the audit is itself audited.
    api.world.services.audit.flush()
    searches = api.get("root", "/api/audit", action="audit.search", user="qa").json()["records"]
    assert patient_id in {r["patient_id"] for r in searches}  # "who looked up this patient's accesses"
    own = api.get("root", "/api/audit", action="audit.search").json()["records"]
    assert {r["username"] for r in own} >= {"qa", "qa-xiyang", "li"}  # li's refused attempt too
    verdict = api.get("root", "/api/audit/verify").json()
    assert verdict["intact"] is True and verdict["checked"] >= 3
    assert api.get("admin", "/api/audit/verify").status_code == 403  # a consortium admin


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "October"}, "since must be a date"),
        ({"since": "2026-10-02", "until": "2026-10-01"}, "until is before since"),
        ({"outcome": "maybe"}, "String should match pattern"),
        ({"limit": "0"}, "greater than or equal to 1"),
        ({"study_uid": "1.2.x"}, "String should match pattern"),
    ],
)
def test_bad_search_parameters_get_a_422_naming_the_fix(api: Api, params: dict[str, str], message: str) -> None:
    answer = api.get("qa", "/api/audit", **params)
    assert answer.status_code == 422 and message in answer.text


def test_audit_verify_on_the_command_line_exits_1_after_tampering(
    make_world: Callable[..., World], tmp_path: Any
) -> None:
    world = make_world("sqlite-folder")
    env = {**receiver_env(world.services.settings.home), "COLUMNS": "200"}  # a table wide enough to read
    uid = world.ingest_study()
    world.services.audit.flush()
    assert "sealed" in yunying("audit", "seal", env=env).stdout
    intact = yunying("audit", "verify", env=env)
    assert "intact" in intact.stdout
    searched = yunying("audit", "search", "--action", "reader.added", env=env).stdout
    assert "reader.added" in searched and "operator" in searched
    out = tmp_path / "audit.jsonl"
    yunying("audit", "export", "--output", str(out), env=env)
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["action"] for r in exported} >= {"site.created", "reader.added", "roster.changed"}

    with transaction(world.services.sessions) as session:
        victim = session.scalars(select(AccessRecord).where(AccessRecord.chain_seq == 2)).one()
        session.execute(update(AccessRecord).where(AccessRecord.id == victim.id).values(source="10.9.9.9"))
        session.execute(delete(AccessRecord).where(AccessRecord.chain_seq == 4))
    tampered = yunying("audit", "verify", env=env, check=False)
    assert tampered.returncode == 1, tampered.stdout
    assert f"TAMPERED chain place 2 (record {victim.id}): altered" in tampered.stdout
    assert "TAMPERED chain place 4: missing: a record was deleted" in tampered.stdout
    assert uid  # the ingest made the study the records are about


def test_qa_downloads_are_audited_as_exports_with_their_outcome(api: Api) -> None:
    assert api.get("qa", "/api/qa/turnaround", format="csv").status_code == 200
    assert api.get("qa", "/api/qa/breaches").status_code == 200  # JSON on screen: not an export
    assert api.get("li", "/api/qa/turnaround", format="csv").status_code == 403
    api.world.services.audit.flush()
    exports = api.get("root", "/api/audit", action="export").json()["records"]
    assert [(r["username"], r["outcome"], r["detail"]["path"], r["detail"]["format"]) for r in exports] == [
        ("li", "denied", "/api/qa/turnaround", "csv"),
        ("qa", "success", "/api/qa/turnaround", "csv"),
    ]
