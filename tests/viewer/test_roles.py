"""Each role, logged in by the browser's cookie, reaches its own pages' APIs and is answered 403
on the others' — the same checks as for a bearer token, since both resolve to one principal."""

from __future__ import annotations

from contextlib import closing

from tests.viewer.conftest import Web

OK, NO = 200, 403
# (method, path) → expected status for (reader li, site fudong-tech, qa-officer, admin)
# (None: neither 401 nor 403 — what the role may do, answered on its merits)
MATRIX: dict[tuple[str, str], tuple[int | None, int | None, int | None, int | None]] = {
    ("GET", "/api/worklist"): (OK, NO, NO, NO),
    ("GET", "/api/site/studies"): (NO, OK, NO, NO),
    ("GET", "/api/site/reports"): (NO, OK, NO, NO),
    ("GET", "/api/admin/sites"): (NO, NO, NO, OK),
    ("GET", "/api/admin/readers"): (NO, NO, NO, OK),
    ("GET", "/api/admin/tasks"): (NO, NO, OK, OK),
    ("GET", "/api/qa/turnaround"): (NO, NO, OK, OK),
    ("GET", "/api/qa/breaches"): (NO, NO, OK, OK),
    ("GET", "/api/qa/peer/queue"): (NO, NO, OK, OK),
    ("GET", "/api/audit"): (NO, NO, OK, OK),
    ("GET", "/api/audit/verify"): (NO, NO, NO, NO),  # an installation admin's only; ours is the consortium's
    ("GET", "/api/break-glass"): (NO, NO, OK, OK),
    ("GET", "/dicomweb/studies"): (OK, OK, OK, OK),  # everyone searches, within his scope
    ("POST", "/api/worklist/next"): (None, NO, NO, NO),
    ("POST", "/api/admin/sites"): (NO, NO, NO, 201),
}
PEOPLE_IN_ORDER = ("li", "fudong-tech", "qa-officer", "admin")
BODIES = {"/api/admin/sites": {"consortium": "Dongtai", "name": "Anfeng", "tier": "township"}}


def test_each_role_reaches_its_apis_and_no_others(web: Web) -> None:
    web.world.ready_study()
    seen: dict[tuple[str, str], list[int]] = {}
    for login in PEOPLE_IN_ORDER:
        browser, csrf = web.log_in(login)
        with closing(browser):
            for method, path in MATRIX:
                answer = browser.request(method, path, headers={"X-CSRF-Token": csrf}, json=BODIES.get(path, {}))
                seen.setdefault((method, path), []).append(answer.status_code)
    for route, expected in MATRIX.items():
        for login, want, got in zip(PEOPLE_IN_ORDER, expected, seen[route], strict=True):
            if want is None:
                assert got not in (401, 403), f"{login}: {route} → {got}"
            else:
                assert got == want, f"{login}: {route} → {got}, expected {want}"


def test_a_refusal_by_role_names_the_role_needed(web: Web) -> None:
    browser, _ = web.log_in("fudong-tech")
    with closing(browser):
        answer = browser.get("/api/worklist")
    assert answer.status_code == 403 and answer.json()["detail"] == "this needs the role reader; you are site"
