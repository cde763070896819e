"""Browser sessions over real HTTP: login, the cookie and its flags, the session's life (idle
timeout, logout, a deactivated user, a new password), CSRF, failed logins slowed down and
audited, and the cookie accepted wherever a bearer token is — with the same scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing

import httpx
import pytest
from sqlalchemy import select

from pacs.identity.passwords import set_password
from pacs.identity.users import find_user, set_active
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, WebSession
from pacs.settings import Mode
from tests.viewer.conftest import PEOPLE, Web


def set_cookie_of(answer: httpx.Response) -> str:
    [cookie] = [value for name, value in answer.headers.multi_items() if name == "set-cookie"]
    return cookie


def access_records(web: Web, action: str) -> list[AccessRecord]:
    web.world.services.audit.flush()
    with transaction(web.world.services.sessions) as session:
        query = select(AccessRecord).where(AccessRecord.action == action).order_by(AccessRecord.id)
        return list(session.scalars(query))


def test_a_login_sets_an_httponly_strict_cookie_and_answers_the_user(web: Web) -> None:
    with web.browser() as browser:
        answer = browser.post("/api/session", json={"login": "fudong-tech", "password": PEOPLE["fudong-tech"][0]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["user"] == {
            "login": "fudong-tech",
            "name": None,
            "role": "site",
            "site": "Fudong",
            "site_id": web.world.township_id,
        }
        assert len(body["csrf_token"]) == 64 and body["idle_timeout_s"] == 1800
        cookie = set_cookie_of(answer)
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert cookie.startswith("yy_session=") and {"httponly", "path", "samesite", "max-age"} <= flags
        assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
        assert "secure" not in flags  # plain HTTP outside production: a Secure cookie would never come back
        assert answer.headers["cache-control"] == "no-store"
        secret = browser.cookies["yy_session"]
        assert len(secret) >= 43  # 256 bits, URL-safe base64
        again = browser.get("/api/session")
        assert again.status_code == 200 and again.json()["user"]["login"] == "fudong-tech"
        assert again.json()["csrf_token"] == body["csrf_token"]
        with transaction(web.world.services.sessions) as session:
            [row] = session.scalars(select(WebSession)).all()
            assert secret not in (row.secret_sha256, str(row.id))  # only its hash is stored
            assert (row.expires_at - row.created_at).total_seconds() == 12 * 3600
        # Logging in again from the same browser: a new id (never the old one kept), the old one ends.
        web.log_in("fudong-tech", browser)
        assert browser.cookies["yy_session"] != secret
        assert httpx.get(f"{web.url}/api/session", cookies={"yy_session": secret}).status_code == 401


def test_a_wrong_password_and_an_unknown_login_get_the_same_answer(web: Web) -> None:
    wrong = httpx.post(f"{web.url}/api/session", json={"login": "li", "password": "not-his-password"})
    unknown = httpx.post(f"{web.url}/api/session", json={"login": "nobody", "password": "not-his-password"})
    service = httpx.post(f"{web.url}/api/session", json={"login": "li", "password": ""})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong login or password"}
    assert "set-cookie" not in wrong.headers
    assert service.status_code == 422  # an empty password is not even tried


def test_get_and_delete_without_a_session_are_401(web: Web) -> None:
    assert httpx.get(f"{web.url}/api/session").status_code == 401
    assert httpx.delete(f"{web.url}/api/session").status_code == 401
    forged = httpx.get(f"{web.url}/api/session", cookies={"yy_session": "x" * 43})
    assert forged.status_code == 401 and "log in again" in forged.json()["detail"]
    assert "max-age=0" in forged.headers["set-cookie"].lower()  # the browser forgets a dead cookie


def test_login_csrf_is_refused_json_only_and_same_origin(web: Web) -> None:
    good = {"login": "li", "password": PEOPLE["li"][0]}
    import json

    as_text = httpx.post(f"{web.url}/api/session", content=json.dumps(good), headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415 and "application/json" in as_text.json()["detail"]
    # A no-cors fetch of a Blob sends no Content-Type at all, which FastAPI parses as JSON anyway.
    bare = httpx.post(f"{web.url}/api/session", content=json.dumps(good))
    assert "content-type" not in bare.request.headers and bare.status_code == 415
    foreign = httpx.post(f"{web.url}/api/session", json=good, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["detail"]
    same = httpx.post(f"{web.url}/api/session", json=good, headers={"Origin": web.url})
    assert same.status_code == 200


def test_logout_revokes_the_session_on_the_server(web: Web) -> None:
    browser, csrf = web.log_in("li")
    with closing(browser):
        secret = browser.cookies["yy_session"]
        refused = browser.delete("/api/session")  # no CSRF token: refused like any cookie DELETE
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
        answer = browser.delete("/api/session", headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 204
        assert "max-age=0" in answer.headers["set-cookie"].lower()
    # Whoever kept the cookie (a copy, a browser that ignored the clearing) opens nothing.
    replayed = httpx.get(f"{web.url}/api/worklist", cookies={"yy_session": secret})
    assert replayed.status_code == 401
    assert [r.outcome for r in access_records(web, "logout")] == ["success"]


def test_csrf_token_needed_for_a_cookie_post_not_for_a_bearer_one(web: Web) -> None:
    uid = web.world.ready_study()
    task_id = web.world.task_of(uid).id
    browser, csrf = web.log_in("li")
    with closing(browser):
        missing = browser.post(f"/api/tasks/{task_id}/claim")
        assert missing.status_code == 403 and "X-CSRF-Token" in missing.json()["detail"]
        wrong = browser.post(f"/api/tasks/{task_id}/claim", headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status_code == 403
        assert web.world.task_of(uid).state == "queued"  # nothing happened
        claimed = browser.post(f"/api/tasks/{task_id}/claim", headers={"X-CSRF-Token": csrf})
        assert claimed.status_code == 200, claimed.text
        assert web.world.task_of(uid).state == "claimed"
        released = browser.post(f"/api/tasks/{task_id}/release", headers={"X-CSRF-Token": csrf})
        assert released.status_code == 200, released.text
    # Another session's token does not fit this session.
    other, other_csrf = web.log_in("li")
    mine, _ = web.log_in("li")
    with closing(other), closing(mine):
        assert mine.post(f"/api/tasks/{task_id}/claim", headers={"X-CSRF-Token": other_csrf}).status_code == 403
    # A bearer token is no ambient credential: no CSRF token needed.
    from pacs.identity.users import create_token

    with transaction(web.world.services.sessions) as session:
        token = create_token(session, find_user(session, "li"))[1]
    by_token = httpx.post(f"{web.url}/api/tasks/{task_id}/claim", headers={"Authorization": f"Bearer {token}"})
    assert by_token.status_code == 200, by_token.text


def test_the_session_dies_when_idle_and_lives_while_used(start_web: Callable[..., Web]) -> None:
    web = start_web(session_idle_timeout_s=1.5)
    browser, _ = web.log_in("li")
    with closing(browser):
        for _ in range(4):  # 2.4 s of use, a request every 0.6 s: never idle for 1.5 s
            time.sleep(0.6)
            assert browser.get("/api/worklist").status_code == 200
        time.sleep(1.7)
        ended = browser.get("/api/worklist")
        assert ended.status_code == 401 and "log in again" in ended.json()["detail"]


def test_the_session_dies_at_its_absolute_lifetime(start_web: Callable[..., Web]) -> None:
    web = start_web(session_lifetime_s=1.5)
    browser, _ = web.log_in("li")
    with closing(browser):
        secret = browser.cookies["yy_session"]
        for _ in range(2):
            time.sleep(0.5)
            assert browser.get("/api/session").status_code == 200
        time.sleep(0.7)
    # Sent as it is (the browser's copy expired with its Max-Age): the server refuses it too.
    ended = httpx.get(f"{web.url}/api/session", cookies={"yy_session": secret})
    assert ended.status_code == 401 and "log in again" in ended.json()["detail"]


def test_sessions_of_a_deactivated_user_die_and_he_cannot_log_in(web: Web) -> None:
    browser, _ = web.log_in("fudong-tech")
    with closing(browser):
        assert browser.get("/api/site/studies").status_code == 200
        with transaction(web.world.services.sessions) as session:
            assert set_active(session, find_user(session, "fudong-tech"), False)
        assert browser.get("/api/site/studies").status_code == 401
    again = httpx.post(f"{web.url}/api/session", json={"login": "fudong-tech", "password": PEOPLE["fudong-tech"][0]})
    assert again.status_code == 401 and again.json() == {"detail": "wrong login or password"}
    with transaction(web.world.services.sessions) as session:
        assert set_active(session, find_user(session, "fudong-tech"), True)
    web.log_in("fudong-tech")[0].close()  # back, with a new login


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(web: Web) -> None:
    browser, _ = web.log_in("li")
    with closing(browser):
        with transaction(web.world.services.sessions) as session:
            assert set_password(session, find_user(session, "li"), "a-new-password-for-li") == 1
        assert browser.get("/api/worklist").status_code == 401
    old = httpx.post(f"{web.url}/api/session", json={"login": "li", "password": PEOPLE["li"][0]})
    assert old.status_code == 401
    new = httpx.post(f"{web.url}/api/session", json={"login": "li", "password": "a-new-password-for-li"})
    assert new.status_code == 200


def test_failed_logins_are_slowed_down_and_audited(start_web: Callable[..., Web]) -> None:
    web = start_web(login_failure_limit=3, login_failure_limit_per_address=5, login_failure_window_s=4.0)

    def attempt(login: str, password: str) -> httpx.Response:
        return httpx.post(f"{web.url}/api/session", json={"login": login, "password": password})

    assert [attempt("li", f"guess-{n}-xxxxxxx").status_code for n in range(3)] == [401, 401, 429]
    blocked = attempt("li", PEOPLE["li"][0])  # while blocked even the right password is refused
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 5
    assert "set-cookie" not in blocked.headers
    # Per address too: other logins from the same address, until the address limit.
    assert [attempt(name, "guess-xxxxxxxxx").status_code for name in ("wang", "zhao")] == [401, 429]
    assert attempt("admin", PEOPLE["admin"][0]).status_code == 429
    time.sleep(int(blocked.headers["Retry-After"]) + 0.2)
    assert attempt("li", PEOPLE["li"][0]).status_code == 200  # the window passed
    records = access_records(web, "login")
    assert [(r.outcome, r.detail.get("login"), r.detail.get("reason")) for r in records] == [
        ("denied", "li", "wrong login or password"),
        ("denied", "li", "wrong login or password"),
        ("denied", "li", "wrong login or password"),
        ("denied", "li", "throttled"),
        ("denied", "wang", "wrong login or password"),
        ("denied", "zhao", "wrong login or password"),
        ("denied", "admin", "throttled"),
        ("success", None, None),
    ]
    assert [r.detail.get("blocked") for r in records[:3]] == [False, False, True]
    assert all(r.source == "127.0.0.1" for r in records)
    assert all("guess" not in str(r.detail) and PEOPLE["li"][0] not in str(r.detail) for r in records)
    success = records[-1]
    assert (success.username, success.role) == ("li", "reader") and isinstance(success.detail["session_id"], int)


def test_the_cookie_fetches_wado_frames_within_the_scope(web: Web) -> None:
    ours = web.world.ready_study()
    theirs = web.world.ready_study(site_id=web.world.county_site_id)
    browser, _ = web.log_in("fudong-tech")
    with closing(browser):
        listed = browser.get("/dicomweb/studies")
        assert listed.status_code == 200 and ours in listed.text and theirs not in listed.text
        series = browser.get(f"/dicomweb/studies/{ours}/series").json()
        series_uid = series[0]["0020000E"]["Value"][0]
        instances = browser.get(f"/dicomweb/studies/{ours}/series/{series_uid}/instances").json()
        sop = instances[0]["00080018"]["Value"][0]
        frame = browser.get(
            f"/dicomweb/studies/{ours}/series/{series_uid}/instances/{sop}/frames/1",
            headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
        )
        assert frame.status_code == 200 and len(frame.content) > 32 * 32
        assert browser.get(f"/dicomweb/studies/{theirs}/metadata").status_code == 404
    [frames] = access_records(web, "frames")  # audited as for a token: once per session and study
    assert (frames.username, frames.role, frames.study_uid) == ("fudong-tech", "site", ours)
    assert [r.outcome for r in access_records(web, "search") if r.username == "fudong-tech"] == ["success"] * 3
    # Another site's study: the 404 of an absent one, audited as a refusal for the session's user.
    [refused] = access_records(web, "metadata")
    assert (refused.username, refused.outcome, refused.study_uid) == ("fudong-tech", "denied", theirs)


def test_production_sets_the_secure_flag(start_web: Callable[..., Web]) -> None:
    web = start_web(mode=Mode.PRODUCTION)
    answer = httpx.post(f"{web.url}/api/session", json={"login": "li", "password": PEOPLE["li"][0]})
    assert answer.status_code == 200
    assert "secure" in [part.strip().lower() for part in set_cookie_of(answer).split(";")]
    # Over plain HTTP a client keeps it to itself, as a browser does: HTTPS only.
    with httpx.Client(base_url=web.url) as client:
        client.post("/api/session", json={"login": "li", "password": PEOPLE["li"][0]})
        assert client.get("/api/session").status_code == 401


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"session_cookie_secure": "false"}, "YUNYING_SESSION_COOKIE_SECURE=false"),
        ({"http_proxy_from": ["0.0.0.0/0"]}, "YUNYING_HTTP_PROXY_FROM trusts every address"),
    ],
)
def test_production_refuses_an_insecure_cookie_or_any_proxy(setting: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    from pacs.settings import Settings

    with pytest.raises(ValidationError, match=message):
        Settings(mode=Mode.PRODUCTION, **setting)  # type: ignore[arg-type]


@pytest.mark.parametrize("trusted", [True, False])
def test_failed_logins_count_per_client_behind_a_trusted_proxy(web: Web, trusted: bool) -> None:
    """`yunying web` behind nginx: with the proxy trusted (YUNYING_HTTP_PROXY_FROM) its
    X-Forwarded-For is the client that is throttled and audited; untrusted, it is ignored (a
    client cannot pick his own address) and everyone counts as the proxy."""
    from tests.dicomweb.conftest import served_web

    services = web.world.services
    services.settings = services.settings.model_copy(
        update={"http_proxy_from": ["127.0.0.1"] if trusted else [], "login_failure_limit_per_address": 2}
    )
    with served_web(services) as base:

        def attempt(client: str, login: str) -> int:
            answer = httpx.post(
                f"{base}/api/session",
                json={"login": login, "password": "guess-xxxxxxxxx"},
                headers={"X-Forwarded-For": client},
            )
            return answer.status_code

        assert [attempt("10.2.0.15", "li"), attempt("10.2.0.15", "wang")] == [401, 429]
        assert attempt("10.3.0.9", "zhao") == (401 if trusted else 429)
    sources = {r.source for r in access_records(web, "login")}
    assert sources == ({"10.2.0.15", "10.3.0.9"} if trusted else {"127.0.0.1"})
