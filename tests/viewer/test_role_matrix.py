"""Every role — admin, reader, site, QA and nobody logged in — against every page of the web
application (viewer/frontend.py CLIENT_ROUTES) and every ``/api`` route (and DICOMweb's study lists):
allowed or refused, as two tables written out below. The API table is checked over HTTP with
each role's browser session (cookie and CSRF token); the page table in a real Chromium, where a
page's guard sends a stranger to his own start page and nobody to the login page."""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI

from pacs.identity.passwords import set_password
from pacs.identity.sites import add_site_ae
from pacs.identity.users import add_user, create_token
from pacs.index.db import transaction
from pacs.index.models import Site
from reading.admin_rules import add_group, add_rule
from reading.api import router as reading_router
from tests.reading.world import sign_study
from tests.viewer.chromium import chromium, open_page  # noqa: F401
from tests.viewer.conftest import PEOPLE, Web
from viewer.frontend import CLIENT_ROUTES

ROLES: Final = ("admin", "reader", "site", "qa", "anonymous")
LOGIN_OF: Final = {"admin": "admin", "reader": "li", "site": "fudong-tech", "qa": "qa-officer", "anonymous": None}

# ── API: the status each role gets. OK: answered on its merits (any status but 401 and 403: a
# reader's claim may find the task taken, a sign without a body is a 422); a number: exactly it.
OK: Final = "ok"
NO: Final = 403  # logged in, but not this role's
ANON: Final = 401
API: Final[dict[tuple[str, str], tuple[int | str, ...]]] = {
    # (method, path)                                  admin  reader site  qa    anonymous
    ("GET", "/api/session"):                          (200,  200,   200,  200,  ANON),
    ("GET", "/api/templates"):                        (200,  200,   200,  200,  ANON),  # no patient data
    ("GET", "/api/worklist"):                         (NO,   200,   NO,   NO,   ANON),
    ("GET", "/api/worklist/views"):                   (NO,   200,   NO,   NO,   ANON),
    ("POST", "/api/worklist/views"):                  (NO,   201,   NO,   NO,   ANON),
    ("DELETE", "/api/worklist/views/{view}"):         (NO,   204,   NO,   NO,   ANON),
    ("POST", "/api/worklist/next"):                   (NO,   OK,    NO,   NO,   ANON),
    ("GET", "/api/tasks/{task}"):                     (NO,   200,   NO,   NO,   ANON),
    ("GET", "/api/tasks/{task}/ai-findings"):         (NO,   200,   NO,   NO,   ANON),
    ("GET", "/api/tasks/{task}/priors"):              (NO,   200,   NO,   NO,   ANON),
    ("POST", "/api/tasks/{task}/priors/{study}/open"): (NO,   OK,    NO,   NO,   ANON),  # its own study: no prior, 404
    ("POST", "/api/tasks/{task}/priors/{study}/identity"): (NO, OK,    NO,   NO,   ANON),  # the same: 404
    ("POST", "/api/break-glass"):                     (NO,   OK,    NO,   NO,   ANON),  # an unknown study: 404
    ("GET", "/api/break-glass"):                      (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/peer-reviews"):                     (NO,   200,   NO,   NO,   ANON),
    ("GET", "/api/peer-reviews/{finding}"):           (NO,   OK,    NO,   NO,   ANON),  # no such review: 404
    ("POST", "/api/peer-reviews/{finding}/score"):    (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/tasks/{task}/claim"):              (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/tasks/{task}/renew"):              (NO,   OK,    NO,   NO,   ANON),
    ("PUT", "/api/tasks/{task}/report"):              (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/tasks/{task}/sign"):               (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/tasks/{task}/escalate"):           (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/tasks/{task}/release"):            (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/tasks/{signed}/addendum"):         (NO,   OK,    NO,   NO,   ANON),
    ("POST", "/api/ai-findings/{finding}/feedback"):  (NO,   OK,    NO,   NO,   ANON),
    ("GET", "/api/reports/{report}"):                 (200,  200,   200,  200,  ANON),  # each within his scope
    ("POST", "/api/reports/{report}/communications"): (NO,   OK,    NO,   NO,   ANON),
    ("GET", "/api/site/studies"):                     (NO,   NO,    200,  NO,   ANON),
    ("GET", "/api/site/reports"):                     (NO,   NO,    200,  NO,   ANON),
    ("GET", "/api/site/deliveries"):                  (NO,   NO,    200,  NO,   ANON),
    ("GET", "/api/site/critical"):                    (NO,   NO,    200,  NO,   ANON),
    ("POST", "/api/site/critical/{finding}/ack"):     (NO,   NO,    OK,   NO,   ANON),  # no such result: 404
    ("POST", "/api/site/deliveries/{finding}/ack"):   (NO,   NO,    OK,   NO,   ANON),
    ("GET", "/api/site/alerts"):                      (NO,   NO,    200,  NO,   ANON),
    ("POST", "/api/site/requests"):                   (NO,   NO,    OK,   NO,   ANON),
    ("GET", "/api/qa/turnaround"):                    (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/breaches"):                      (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/peer/queue"):                    (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/ai"):                            (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/report?month=2026-11"):         (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/workload?month=2026-11"):       (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/peer/reviews"):                  (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/qa/peer/rates"):                    (200,  NO,    NO,   200,  ANON),
    ("POST", "/api/qa/peer/sample"):                  (OK,   NO,    NO,   OK,   ANON),
    ("POST", "/api/qa/peer/queue/{finding}/close"):   (OK,   NO,    NO,   OK,   ANON),  # no such case: 404
    ("GET", "/api/patient-links"):                    (200,  NO,    NO,   200,  ANON),
    ("POST", "/api/patient-links/{finding}/withdraw"): (OK,   NO,    NO,   OK,   ANON),  # no such decision: 404
    ("GET", "/api/audit"):                            (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/audit/export"):                     (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/audit/verify"):                     (NO,   NO,    NO,   NO,   ANON),  # installation admins only
    ("GET", "/api/admin/sites"):                      (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/sites"):                     (201,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/sites/{site}"):               (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/sites/{township}/aes"):      (201,  NO,    NO,   NO,   ANON),
    ("DELETE", "/api/admin/sites/{township}/aes/{ae}"): (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/users"):                      (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/users"):                     (201,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/users/{target}/password"):    (200,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/users/{target}/active"):      (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/readers"):                    (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/readers"):                   (201,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/readers/{reader}"):           (200,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/readers/{reader}/roster"):    (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/groups"):                     (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/groups"):                    (201,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/groups/{group}/members"):     (200,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/groups/{group}"):             (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/rules"):                      (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/rules"):                     (201,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/rules/{rule}/active"):        (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/sla"):                        (200,  NO,    NO,   NO,   ANON),
    ("PUT", "/api/admin/sla"):                        (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/tokens"):                     (200,  NO,    NO,   NO,   ANON),
    ("POST", "/api/admin/tokens"):                    (201,  NO,    NO,   NO,   ANON),
    ("DELETE", "/api/admin/tokens/{token}"):          (200,  NO,    NO,   NO,   ANON),
    ("GET", "/api/admin/tasks"):                      (200,  NO,    NO,   200,  ANON),
    ("GET", "/api/admin/deliveries"):                 (200,  NO,    NO,   200,  ANON),
    ("GET", "/dicomweb/studies"):                     (200,  200,   200,  200,  ANON),  # each within his scope
    ("GET", "/dicomweb/studies/{study}/series"):      (200,  200,   200,  200,  ANON),
}  # fmt: skip

# ── Pages: where each role ends up. HERE: the page itself; HOME: his own start page (the guard
# refused him); LOGIN: the login page, with the page to come back to (nobody is logged in).
HERE: Final = "here"
HOME: Final = "home"
LOGIN: Final = "login"
START: Final = {"admin": "/admin", "reader": "/worklist", "site": "/site", "qa": "/qa"}
PAGES: Final[dict[str, tuple[str, ...]]] = {
    # route              admin  reader  site   qa     anonymous
    "/":                 (HOME, HOME,   HOME,  HOME,  LOGIN),  # only ever a redirect
    "/login":            (HERE, HERE,   HERE,  HERE,  HERE),
    "/worklist":         (HOME, HERE,   HOME,  HOME,  LOGIN),
    "/read/{task_id}":   (HOME, HERE,   HOME,  HOME,  LOGIN),
    "/site":             (HOME, HOME,   HERE,  HOME,  LOGIN),
    "/qa":               (HERE, HOME,   HOME,  HERE,  LOGIN),
    "/admin":            (HERE, HOME,   HOME,  HOME,  LOGIN),
}  # fmt: skip
# What shows that the page itself was drawn, not only its URL kept.
DRAWN: Final = {
    "/login": "#login-form",
    "/worklist": "#worklist",
    "/read/{task_id}": "#viewport",
    "/site": "main table",
    "/qa": "#qa-sites",
    "/admin": "#admin-sites",
}

MATRIX_TARGET: Final = ("matrix-target", "target-of-the-matrix-7")


def test_the_tables_cover_every_page_and_role() -> None:
    assert sorted(PAGES) == sorted(CLIENT_ROUTES), "a client route without its row in PAGES (or a stale row)"
    assert all(len(row) == len(ROLES) for row in [*PAGES.values(), *API.values()])
    assert set(START) | {"anonymous"} == set(ROLES)


def test_the_api_table_covers_every_api_route() -> None:
    """Each operation under /api has its row in API: a new one without it fails here."""
    app = FastAPI()
    app.include_router(reading_router)
    template = re.compile(r"\{[a-z_]+\}")
    served = {(m.upper(), template.sub("{}", p)) for p, ops in app.openapi()["paths"].items() for m in ops}
    table = {(m, template.sub("{}", p.split("?")[0])) for m, p in API}
    api = {route for route in served if route[1].startswith("/api/")}
    assert len(api) > 60 and sorted(api - table) == []


def _world_for_the_matrix(web: Web) -> dict[str, Any]:
    """A queued task, a signed report of another study, an AE to remove and a user whose
    password and activity the admin may change — the ids the paths name."""
    world = web.world
    signed_uid = world.ready_study()
    report_id = sign_study(world, signed_uid)
    queued_uid = world.ready_study()
    with transaction(world.services.sessions) as session:
        site = session.get_one(Site, world.township_id)
        ae = add_site_ae(session, site=site, ae_title="MATRIX_CT", allowed_address="10.7.0.1")
        target = add_user(session, username=MATRIX_TARGET[0], role="qa", consortium="Dongtai")
        set_password(session, target, MATRIX_TARGET[1])
        rule = add_rule(session, consortium="Dongtai", name="matrix rule", modality="MR", to_tier="provincial")
        group = add_group(session, consortium="Dongtai", name="matrix group", tier="county", members=["wang"])
        gateway = add_user(session, username="matrix-gw", role="site", site="Fudong", is_service=True)
        token, _ = create_token(session, gateway, name="matrix")
        ids = {"ae": ae.id, "rule": rule.id, "group": group.id, "token": token.id}
    return {
        "task": world.task_of(queued_uid).id,
        "signed": world.task_of(signed_uid).id,
        "report": report_id,
        "study": queued_uid,
        "site": world.county_site_id,
        "township": world.township_id,
        "target": MATRIX_TARGET[0],
        "reader": "wang",
        "finding": 999_999,
        "view": 0,  # the reader's own view, created just before (below)
        **ids,
    }


def _bodies(role: str) -> dict[str, Any]:
    """A valid body for each changing route, so that a refusal is by role, not by validation."""
    return {
        "/api/worklist/views": {"name": f"by {role}", "filters": {"priority": "stat"}},
        "/api/tasks/{task}/report": {"template_id": "ct_head", "impression": "matrix"},
        "/api/tasks/{task}/sign": {},
        "/api/tasks/{task}/escalate": {"reason": "matrix"},
        "/api/tasks/{signed}/addendum": {"text": "matrix"},
        "/api/ai-findings/{finding}/feedback": {"agree": True},
        "/api/reports/{report}/communications": {"told": "周医生", "method": "phone", "at": "2026-12-03T08:00:00Z"},
        "/api/admin/sites": {"consortium": "Dongtai", "name": f"Matrix {role}", "tier": "village"},
        "/api/admin/sites/{site}": {"name": "Dongtai County Hospital", "tier": "county", "contact": role},
        "/api/admin/sites/{township}/aes": {"ae_title": "MATRIX_DR", "allowed_address": f"10.8.0.{len(role)}"},
        "/api/admin/users": {"username": f"matrix-{role}", "role": "qa", "password": "a-first-password-9"},
        "/api/admin/users/{target}/password": {"password": "another-password-8"},
        "/api/admin/users/{target}/active": {"active": True},
        "/api/admin/readers": {"username": f"matrix-reader-{role}", "tier": "county", "modalities": ["CT"]},
        "/api/admin/readers/{reader}": {"tier": "county", "modalities": ["CT"]},
        "/api/admin/readers/{reader}/roster": {"windows": ["daily 00:00-23:59"]},
        "/api/admin/groups": {"name": f"by {role}", "tier": "county", "members": ["li"]},
        "/api/admin/groups/{group}/members": {"members": ["wang", "zhao"]},
        "/api/admin/groups/{group}": {"name": f"renamed by {role}", "members": ["wang", "zhao"]},
        "/api/admin/rules": {"name": f"by {role}", "modality": "MG", "to_tier": "provincial"},
        "/api/admin/rules/{rule}/active": {"active": True},
        "/api/admin/sla": {"priority": "stat", "minutes": 30},
        "/api/admin/tokens": {"account": "matrix-gw", "name": f"by {role}"},
        "/api/tasks/{task}/priors/{study}/identity": {"decision": "confirmed"},
        "/api/break-glass": {"study_uid": "1.2.826.0.1.3680043.10.1234.404", "reason": "matrix"},
        "/api/peer-reviews/{finding}/score": {"score": "1"},
        "/api/site/requests": {"study_uid": "1.2.826.0.1.3680043.10.1234.405", "priority": "urgent"},
        "/api/qa/peer/sample": {"month": "2026-11"},
        "/api/patient-links/{finding}/withdraw": {},
        "/api/qa/peer/queue/{finding}/close": {"outcome": "confirmed", "comment": "matrix"},
    }


def _client(web: Web, role: str) -> tuple[httpx.Client, dict[str, str]]:
    login = LOGIN_OF[role]
    if login is None:
        return web.browser(), {}
    client, csrf = web.log_in(login)
    return client, {"X-CSRF-Token": csrf}


def test_each_role_is_allowed_or_refused_each_api_route_family_as_the_table_says(web: Web) -> None:
    ids = _world_for_the_matrix(web)
    seen: dict[tuple[str, str], dict[str, int]] = {}
    # The admin goes last: his changes (an AE removed, a password reset) must not change what
    # the others are answered.
    for role in ("reader", "site", "qa", "anonymous", "admin"):
        client, csrf = _client(web, role)
        bodies = _bodies(role)
        with closing(client):
            if role == "reader":
                saved = client.post("/api/worklist/views", headers=csrf, json={"name": "to delete", "filters": {}})
                ids["view"] = saved.json()["id"]
            for method, template in API:
                path = template.format(**ids)
                body = bodies.get(template)
                answer = client.request(method, path, headers=csrf, json=body)
                seen.setdefault((method, template), {})[role] = answer.status_code
    wrong = []
    for route, expected in API.items():
        for role, want in zip(ROLES, expected, strict=True):
            got = seen[route][role]
            if (want == OK and got in (401, 403)) or (want != OK and got != want):
                wrong.append(f"{role:9} {route[0]:6} {route[1]}: {got}, expected {want}")
    assert wrong == [], "\n".join(wrong)


def test_a_role_that_may_not_use_a_route_is_refused_before_its_input_is_looked_at(web: Web) -> None:
    """Default-deny means the role is checked first: a caller of another role who sends no query
    parameters, an empty body and ids that are not numbers is answered 403, never a 422 that
    tells him what the route would take."""
    wrong = []
    for role in ("reader", "site", "qa", "admin"):
        client, csrf = _client(web, role)
        with closing(client):
            for (method, template), expected in API.items():
                if expected[ROLES.index(role)] != NO:
                    continue
                path = re.sub(r"\{\w+\}", "not-a-number", template.split("?")[0])
                answer = client.request(method, path, headers=csrf, json={} if method != "GET" else None)
                if answer.status_code != NO:
                    wrong.append(f"{role:6} {method:6} {path}: {answer.status_code} {answer.text[:80]}")
    assert wrong == [], "\n".join(wrong)


def test_every_page_is_the_same_shell_for_every_role_over_http(web: Web) -> None:
    """The refusal of a page is its guard's, in the browser (below): what the server answers for
    a page is one static shell, the same bytes for everyone, holding nothing of any user."""
    task = web.world.task_of(web.world.ready_study()).id
    shells: dict[str, set[bytes]] = {}
    for role in ROLES:
        client, _ = _client(web, role)
        with closing(client):
            for route in CLIENT_ROUTES:
                answer = client.get(route.format(task_id=task))
                assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html"), route
                assert "default-src 'self'" in answer.headers["content-security-policy"]
                shells.setdefault(route, set()).add(answer.content)
    assert all(len(bodies) == 1 for bodies in shells.values())
    # Beyond the shared shell, /read/… carries preload links for the reading and viewer chunks: asset
    # names, the same for everyone.
    preload = re.compile(rb'<link rel="(?:module)?preload"[^>]*>')
    assert {route for route, bodies in shells.items() if preload.search(next(iter(bodies)))} == {"/read/{task_id}"}
    assert len({preload.sub(b"", body) for bodies in shells.values() for body in bodies}) == 1
    shell = next(iter(shells["/"])).decode()
    assert "Fudong" not in shell and "li" not in re.findall(r"\w+", shell)


def _landing(page: Any) -> str:
    """Where the page settles: its path once the router has drawn something."""
    page.wait_for_function("() => document.querySelector('#loading') === null && document.querySelector('main')")
    page.wait_for_load_state("networkidle")
    path: str = page.evaluate("() => location.pathname + location.search")
    return path


@pytest.mark.browser
@pytest.mark.slow
def test_each_role_lands_where_the_page_table_says_in_chromium(chromium: Any, web: Web) -> None:  # noqa: F811
    task = web.world.task_of(web.world.ready_study()).id
    errors: list[str] = []
    wrong: list[str] = []
    for column, role in enumerate(ROLES):
        page = open_page(chromium, web, errors)
        login = LOGIN_OF[role]
        if login is not None:  # the cookie in the browser's jar, as after the login form
            assert page.request.post("/api/session", data={"login": login, "password": PEOPLE[login][0]}).ok
        for route, row in PAGES.items():
            expected = row[column]
            path = route.format(task_id=task)
            page.goto(path)
            landed = _landing(page)
            if expected == HERE:
                ok = landed == path
                if ok and route in DRAWN:
                    page.locator(DRAWN[route]).first.wait_for(timeout=20_000)
            elif expected == HOME:
                ok = landed == START[role]
            else:
                ok = re.fullmatch(r"/login\?next=" + re.escape(path.replace("/", "%2F")), landed) is not None or (
                    route == "/" and landed == "/login"
                )
            if not ok:
                wrong.append(f"{role:9} {route}: landed on {landed}, expected {expected}")
        page.context.close()
    assert wrong == [], "\n".join(wrong)
    assert not errors, f"the pages threw: {errors}"
