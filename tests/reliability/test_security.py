"""Security across every route (issue G): every HTTP route needs a token or a live session
cookie except health, readiness, the loopback-only metrics and the login; a site's token or
session cookie reaches none of another site's data by any GET
route of the API or DICOMweb; a UID with path characters never becomes a file name; markup in
a patient's name stays text in the printed report."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from pacs.identity.passwords import set_password
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Instance, Series, Study
from pacs.ingest import Origin, OutcomeKind
from reading.settings import ReadingSettings
from tests.dicomweb.conftest import served, served_web
from tests.pacs.helpers import write_ct
from tests.reading.world import World, sign_study
from viewer.app import create_app
from viewer.frontend import CLIENT_ROUTES

# The pages of the browser application (viewer/frontend.py) are open too: the same index.html
# for each, no patient data — the page fetches that from /api and /dicomweb with the session.
PAGE_ROUTES = set(CLIENT_ROUTES)
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics", "/openapi.json", *PAGE_ROUTES}
# Open to anyone, but only with a method: the login (viewer/session_api.py).
OPEN_OPERATIONS = {("POST", "/api/session")}
ROOT = Path(__file__).resolve().parents[2]


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every operation: the OpenAPI description's, and the routes left out of
    it (declared on the app itself — a test below keeps it so)."""
    found = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    hidden = [
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and not route.include_in_schema
        for method in sorted(route.methods - {"HEAD"})
    ]
    return found + hidden


def test_only_the_open_routes_are_left_out_of_the_openapi_description() -> None:
    hidden = subprocess.run(
        ["grep", "-rn", "include_in_schema=False", "pacs", "reading", "viewer", "ai_models", "--include=*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    in_app = [line for line in hidden if line.startswith("viewer/app.py:")]
    pages = [line for line in hidden if line.startswith("viewer/frontend.py:")]
    assert len(in_app) == 3 and len(pages) == 1 and len(hidden) == 4, hidden


@pytest.mark.parametrize("credential", ["none", "forged session cookie"])
def test_every_route_needs_a_token_but_health_and_metrics(make_world: Callable[..., World], credential: str) -> None:
    world = make_world()
    app = create_app(world.services, ReadingSettings())
    routes = all_routes(app)
    assert len(routes) >= 60
    cookies = {"yy_session": "forged-" + "x" * 40} if credential != "none" else None
    with served(app) as url:
        page_shell = httpx.get(f"{url}/login", timeout=10).text
        for method, route in routes:
            path = re.sub(r"\{[a-z_]+\}", "1", route)
            answer = httpx.request(method, f"{url}{path}", cookies=cookies, timeout=10)
            if route in PAGE_ROUTES:  # the page shell: the same HTML for everyone, no data in it
                assert answer.status_code in (200, 503) and answer.headers["content-type"].startswith("text/html")
                # /read/… adds preload links for the reading and viewer chunks (asset names, no data).
                shell = re.sub(r'<link rel="(?:module)?preload"[^>]*>', "", answer.text)
                assert "patient" not in shell.lower() and shell == page_shell, route
            elif route in OPEN_ROUTES:
                assert answer.status_code in (200, 503), f"{method} {route}"
            elif (method, route) in OPEN_OPERATIONS:
                assert answer.status_code in (415, 422), f"{method} {route}"  # no credentials: nobody logged in
            else:
                assert answer.status_code in (401, 422), f"{method} {route}: {answer.status_code}"
                assert answer.status_code == 401 or set(answer.json()) == {"detail"}


@pytest.mark.parametrize("credential", ["bearer token", "session cookie"])
def test_a_site_reaches_none_of_another_sites_data_by_any_route(
    make_world: Callable[..., World], credential: str
) -> None:
    world = make_world()
    theirs = world.ready_study(site_id=world.county_site_id)
    report_id = sign_study(world, theirs, reader="chen")  # the county hospital's studies go to the province
    ours = world.ready_study()
    task_id = world.task_of(theirs).id
    with transaction(world.services.sessions) as session:
        add_user(session, username="fudong", role="site", site="Fudong")
        token = create_token(session, find_user(session, "fudong"))[1]
        set_password(session, find_user(session, "fudong"), "township-CT-room-7")
        series_uid, sop_uid = session.execute(
            select(Series.series_uid, Instance.sop_instance_uid)
            .join(Instance, Instance.series_pk == Series.id)
            .join(Study, Study.id == Series.study_pk)
            .where(Study.study_uid == theirs)
            .limit(1)
        ).one()
    their_patient = world.study(theirs).patient_id
    values = {
        "study_uid": theirs,
        "study": theirs,
        "series_uid": series_uid,
        "series": series_uid,
        "sop_uid": sop_uid,
        "sop": sop_uid,
        "frames": "1",
        "report_id": str(report_id),
        "task_id": str(task_id),
        "site_id": str(world.county_site_id),
    }
    secrets = {theirs, series_uid, sop_uid}
    app = create_app(world.services, ReadingSettings())
    checked = 0
    with served(app) as url:
        client = httpx.Client(base_url=url, timeout=30)
        if credential == "bearer token":
            client.headers["Authorization"] = f"Bearer {token}"
        else:
            login = client.post("/api/session", json={"login": "fudong", "password": "township-CT-room-7"})
            assert login.status_code == 200, login.text
        own = client.get("/dicomweb/studies")
        assert ours in own.text and theirs not in own.text  # the credential works, for its own site
        for method, route in all_routes(app):
            if method != "GET" or route in OPEN_ROUTES:
                continue
            path = re.sub(r"\{([a-z_]+)\}", lambda m: values.get(m.group(1), "1"), route)
            answer = client.get(path, params={"StudyInstanceUID": theirs, "PatientID": their_patient})
            checked += 1
            if answer.status_code in (400, 403, 404, 406, 422):
                continue
            assert answer.status_code < 500, f"{route}: {answer.status_code}"
            leaked = [s for s in secrets if s.encode() in answer.content]
            assert not leaked, f"GET {route} answered {answer.status_code} with the other site's {leaked}"
        client.close()
    assert checked >= 30


def test_a_uid_with_path_characters_never_becomes_a_file_name(make_world: Callable[..., World], tmp_path: Path) -> None:
    world = make_world()
    [path] = write_ct(tmp_path / "ct", slices=1, seed=81, size=16, kind="head")
    dataset = pydicom.dcmread(path)
    dataset.SOPInstanceUID = "../../../../tmp/yunying-escape"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyInstanceUID = "1.2/../../evil"
    dataset.save_as(path, enforce_file_format=True)
    outcome = world.services.ingest.receive(
        path, Origin(site_id=world.township_id, calling_ae="FUDONG_CT", source_address="127.0.0.1")
    )
    assert outcome.kind is OutcomeKind.MALFORMED  # not a UID: quarantined, never indexed under it
    home = world.services.settings.home
    names = [p.name for p in Path(home).rglob("*")]
    assert not any("escape" in n or "evil" in n for n in names)
    assert not Path("/tmp/yunying-escape").exists()


def test_markup_in_a_patient_name_stays_text_in_the_printed_report(make_world: Callable[..., World]) -> None:
    world = make_world()
    uid = world.ready_study()
    with transaction(world.services.sessions) as session:
        study = session.scalars(select(Study).where(Study.study_uid == uid)).one()
        study.patient_name = '<font size="40">王</font><script>alert(1)</script>^小明'
    report_id = sign_study(world, uid)
    with transaction(world.services.sessions) as session:
        add_user(session, username="fudong", role="site", site="Fudong")
        token = create_token(session, find_user(session, "fudong"))[1]
    with served(create_app(world.services, ReadingSettings())) as url:
        pdf = httpx.get(
            f"{url}/api/reports/{report_id}", params={"format": "pdf"}, headers={"Authorization": f"Bearer {token}"}
        )
        as_json = httpx.get(f"{url}/api/reports/{report_id}", headers={"Authorization": f"Bearer {token}"})
    assert pdf.status_code == 200, pdf.text[:300]
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout.decode()
    assert "<font size" in text  # the markup printed as the text it is, not obeyed
    assert as_json.headers["content-type"].startswith("application/json")  # JSON: the client escapes


def test_repeated_failed_authentication_is_slowed_down_and_audited(make_world: Callable[..., World]) -> None:
    import time

    from pacs.index.models import AccessRecord

    world = make_world()
    world.services.settings = world.services.settings.model_copy(
        update={"auth_failure_limit": 3, "auth_failure_window_s": 2.0}
    )
    with transaction(world.services.sessions) as session:
        add_user(session, username="fudong", role="site", site="Fudong")
        token = create_token(session, find_user(session, "fudong"))[1]
    with served(create_app(world.services, ReadingSettings())) as url:

        def get(bearer: str) -> httpx.Response:
            return httpx.get(f"{url}/dicomweb/studies", headers={"Authorization": f"Bearer {bearer}"}, timeout=10)

        answers = [get(f"guess-{n}-xxxxxxxxxxxxxxxx").status_code for n in range(3)]
        assert answers == [401, 401, 429]  # the third failure within the window starts the block
        blocked = get(token)  # while blocked, even a valid token is refused: guessing cannot go on
        assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 3
        time.sleep(2.2)
        assert get(token).status_code == 200  # the window passed
    world.services.audit.flush()
    with transaction(world.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(AccessRecord.action == "authenticate")).all()
    assert [(r.username, r.outcome, r.source, r.detail["token_prefix"]) for r in records] == [
        ("unknown", "denied", "127.0.0.1", f"guess-{n}-") for n in range(3)
    ]
    assert [r.detail["blocked"] for r in records] == [False, False, True]


def _denied_sources(world: World) -> list[str]:
    from pacs.index.models import AccessRecord

    world.services.audit.flush()
    with transaction(world.services.sessions) as session:
        records = session.scalars(
            select(AccessRecord).where(AccessRecord.action == "authenticate").order_by(AccessRecord.id)
        ).all()
    return [r.source for r in records]


def test_a_forwarded_address_is_believed_only_from_a_configured_proxy(make_world: Callable[..., World]) -> None:
    """uvicorn believes X-Forwarded-For from loopback by default; then any local client could pick
    the address it is audited and throttled under, and guess tokens without end by changing it."""
    world = make_world()
    world.services.settings = world.services.settings.model_copy(
        update={"auth_failure_limit": 3, "auth_failure_window_s": 60.0}
    )

    def guesses(url: str) -> list[int]:
        return [
            httpx.get(
                f"{url}/dicomweb/studies",
                headers={"Authorization": f"Bearer guess-{n}-xxxxxxxxxxxxxxxx", "X-Forwarded-For": f"10.9.9.{n}"},
                timeout=10,
            ).status_code
            for n in range(4)
        ]

    with served_web(world.services) as url:  # the default: no proxy configured
        assert guesses(url) == [401, 401, 429, 429]  # one address, whatever the header says
    assert _denied_sources(world) == ["127.0.0.1"] * 3  # the blocked fourth is refused before any check

    world.services.settings = world.services.settings.model_copy(update={"http_proxy_from": ["127.0.0.1"]})
    world.services.audit.flush()
    with served_web(world.services) as url:  # behind a reverse proxy on loopback: its header is the client
        assert guesses(url) == [401, 401, 401, 401]  # four clients, one guess each
    assert _denied_sources(world)[3:] == [f"10.9.9.{n}" for n in range(4)]


def test_a_proxy_list_that_is_not_addresses_is_refused_at_start() -> None:
    import pytest
    from pydantic import ValidationError

    from pacs.settings import Settings

    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(http_proxy_from=["nginx"])
    with pytest.raises(ValidationError, match="trusts every address"):
        Settings(
            mode="production",
            secret_key="s" * 40,
            database_url="postgresql+psycopg://x@db/y",
            dicom_host="127.0.0.1",
            http_proxy_from=["0.0.0.0/0"],
        )


def test_repeated_failed_logins_are_slowed_down_and_audited(make_world: Callable[..., World]) -> None:
    """The browser's login (issue F): per login name and per address; every attempt an access
    record. tests/viewer/test_sessions.py has the details (per address, Retry-After, proxies)."""
    from pacs.index.models import AccessRecord

    world = make_world()
    world.services.settings = world.services.settings.model_copy(update={"login_failure_limit": 3})
    with transaction(world.services.sessions) as session:
        add_user(session, username="fudong", role="site", site="Fudong")
        set_password(session, find_user(session, "fudong"), "township-CT-room-7")
    with served(create_app(world.services, ReadingSettings())) as url:

        def log_in(password: str) -> int:
            answer = httpx.post(f"{url}/api/session", json={"login": "fudong", "password": password}, timeout=10)
            return answer.status_code

        assert [log_in(f"guess-{n}-xxxxxx") for n in range(3)] == [401, 401, 429]
        assert log_in("township-CT-room-7") == 429  # the right password too, while blocked
    world.services.audit.flush()
    with transaction(world.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(AccessRecord.action == "login")).all()
    assert [(r.outcome, r.detail["reason"]) for r in records] == [
        *[("denied", "wrong login or password")] * 3,
        ("denied", "throttled"),
    ]
