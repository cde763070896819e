"""The browser's login: ``/api/session`` — POST logs in, GET describes the session, DELETE
logs out. Passwords and sessions are pacs.identity's (passwords.py, sessions.py); here is only
HTTP: the cookie, the login-CSRF checks, the failed-login throttle and the audit of every
attempt (``login`` access records: success, denied, and denied with ``reason: throttled``).

Once logged in, the cookie is accepted wherever a bearer token is (pacs/dicomweb/auth.py).
"""

from __future__ import annotations

import math
from datetime import datetime
from email.message import Message
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import (
    CSRF_HEADER,
    NOBODY,
    SESSION_COOKIE,
    Authenticated,
    expired_cookie,
    services_of,
    session_policy,
)
from pacs.identity.passwords import MAX_LENGTH, login_candidate, password_accepted, rehash_if_outdated
from pacs.identity.sessions import close_replaced, close_session, csrf_token_of, open_session
from pacs.identity.throttle import FailureThrottle, Verdict
from pacs.identity.users import Principal, principal_of
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Site, User, WebSession
from pacs.settings import Settings

router = APIRouter(prefix="/api/session", tags=["session"])

WRONG: Final = "wrong login or password"  # one answer: never which of the two was wrong


class Credentials(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class SessionUser(BaseModel):
    login: str
    name: str | None
    role: str
    site: str | None = Field(description="The site of a site user (sites are known by name), else null")
    site_id: int | None


class SessionView(BaseModel):
    user: SessionUser
    csrf_token: str = Field(description=f"Send it as {CSRF_HEADER} with every POST, PUT, PATCH or DELETE")
    idle_timeout_s: int
    expires_at: datetime = Field(description="When the session ends however busy (absolute lifetime)")


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttles(request: Request) -> tuple[FailureThrottle, FailureThrottle]:
    """Per login name and per source address, kept by this process (like the bearer throttle)."""
    state = request.app.state
    if getattr(state, "login_throttles", None) is None:
        settings = services_of(request).settings
        window = settings.login_failure_window_s
        state.login_throttles = (
            FailureThrottle(settings.login_failure_limit, window),
            FailureThrottle(settings.login_failure_limit_per_address, window),
        )
    throttles: tuple[FailureThrottle, FailureThrottle] = state.login_throttles
    return throttles


def refuse_cross_site(request: Request) -> None:
    """Login CSRF (a foreign page logging the browser in as the attacker): a form or a
    no-cors fetch can only send text/plain, form or multipart bodies — or none at all, which
    FastAPI would still parse as JSON — so JSON is required; and a browser's Origin, when
    sent, must be this host or an allowed CORS origin. A dependency: it answers before the
    body is validated."""
    settings = services_of(request).settings
    content_type = Message()
    content_type["content-type"] = request.headers.get("content-type", "")
    if content_type.get_content_type() != "application/json":
        raise HTTPException(415, "send the login as JSON: Content-Type: application/json")
    origin = request.headers.get("origin")
    if origin is not None and origin not in settings.cors_origins:
        if urlsplit(origin).netloc != request.headers.get("host", ""):
            raise HTTPException(403, f"a login from another site's page ({origin}) is refused")


def _view(session: Session, user: User, csrf_token: str, settings: Settings, expires_at: datetime) -> SessionView:
    site = session.get(Site, user.site_id) if user.site_id is not None else None
    return SessionView(
        user=SessionUser(
            login=user.username,
            name=user.display_name,
            role=user.role,
            site=site.name if site else None,
            site_id=user.site_id,
        ),
        csrf_token=csrf_token,
        idle_timeout_s=int(settings.session_idle_timeout_s),
        expires_at=expires_at,
    )


def _too_many(verdict: Verdict) -> HTTPException:
    return HTTPException(
        429,
        f"too many failed logins for this login or from your address; retry in {verdict.retry_after_s} s",
        headers={"Retry-After": str(verdict.retry_after_s)},
    )


@router.post("", response_model=SessionView, dependencies=[Depends(refuse_cross_site)])
def log_in(request: Request, credentials: Credentials, response: Response) -> SessionView:
    """Log in with a login name and password: sets the ``yy_session`` cookie (HttpOnly,
    SameSite=Strict, Secure in production) and answers the user and the CSRF token. A wrong
    login or password is 401 with one message; repeated failures are 429 with Retry-After."""
    services = services_of(request)
    settings = services.settings
    source = _source(request)
    by_login, by_address = _throttles(request)
    login_key = credentials.login.casefold()
    for verdict in (by_login.check(login_key), by_address.check(source)):
        if verdict.blocked:
            services.audit.record(
                NOBODY, "login", outcome="denied", source=source, login=credentials.login, reason="throttled"
            )
            raise _too_many(verdict)
    policy = session_policy(settings)
    try:
        with transaction(services.sessions, read_only=True) as session:
            candidate = login_candidate(session, credentials.login)
        accepted = password_accepted(candidate, credentials.password)  # outside any transaction: ~50 ms
        opened: tuple[Principal, SessionView, str] | None = None
        if accepted and candidate is not None:
            with transaction(services.sessions) as session:
                user = session.get(User, candidate.user_id)
                if user is not None and user.active:  # not deactivated since it was read
                    rehash_if_outdated(user, credentials.password)
                    replaced = request.cookies.get(SESSION_COOKIE)
                    if replaced:
                        close_replaced(session, replaced, user_id=user.id)
                    new = open_session(session, user, policy=policy, source=source)
                    view = _view(session, user, new.csrf_token, settings, new.row.expires_at)
                    opened = (principal_of(session, user, session_id=new.row.id), view, new.secret)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    if opened is None:
        verdicts = (by_login.fail(login_key), by_address.fail(source))
        services.audit.record(
            NOBODY,
            "login",
            outcome="denied",
            source=source,
            login=credentials.login,
            reason="wrong login or password",
            blocked=any(v.newly_blocked for v in verdicts),
        )
        blocked = [v for v in verdicts if v.blocked]
        if blocked:
            raise _too_many(max(blocked, key=lambda v: v.retry_after_s))
        raise HTTPException(401, WRONG)
    who, view, secret = opened
    by_login.forgive(login_key)
    services.audit.record(who, "login", source=source, session_id=who.session_id)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=math.ceil(settings.session_lifetime_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
    )
    response.headers["Cache-Control"] = "no-store"
    return view


def _browser_session(who: Principal) -> int:
    if who.session_id is None:
        raise HTTPException(
            401, "this describes a browser session (the yy_session cookie of POST /api/session); a token has none"
        )
    return who.session_id


@router.get("", response_model=SessionView)
def current_session(request: Request, who: Authenticated, response: Response) -> SessionView:
    """The logged-in user and the session's CSRF token (after a page reload), or 401."""
    _browser_session(who)
    services = services_of(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    try:
        with transaction(services.sessions, read_only=True) as session:
            user = session.get(User, who.user_id)
            row = session.get(WebSession, who.session_id)
            if user is None or row is None:
                raise HTTPException(401, "your session has ended: log in again (POST /api/session)")
            view = _view(session, user, csrf_token_of(secret), services.settings, row.expires_at)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    response.headers["Cache-Control"] = "no-store"
    return view


@router.delete("", status_code=204)
def log_out(request: Request, who: Authenticated) -> Response:
    """Log out: the session is revoked on the server (the cookie alone opens nothing after) and
    the browser told to forget the cookie. Needs X-CSRF-Token, like every cookie DELETE."""
    session_id = _browser_session(who)
    services = services_of(request)
    try:
        with transaction(services.sessions) as session:
            close_session(session, session_id)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    services.audit.record(who, "logout", source=_source(request), session_id=session_id)
    return Response(status_code=204, headers={"Set-Cookie": expired_cookie(services.settings)})
