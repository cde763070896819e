"""Authentication of every DICOMweb and API route (``Authenticated``): a bearer token, or the
session cookie of a browser that logged in (``POST /api/session``, viewer/session_api.py).
Both resolve to the same ``Principal``, so every scope check and audit applies alike.

A cookie is an ambient credential — the browser sends it with any request to this origin,
whoever's page made it — so a request that changes something and is authenticated by the
cookie must also carry the session's CSRF token in ``X-CSRF-Token``. A bearer token is never
sent by a browser on its own, so bearer requests need none.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from pacs.identity.sessions import SessionPolicy, csrf_token_matches, resolve_session, touch
from pacs.identity.throttle import FailureThrottle
from pacs.identity.users import Principal, Scope, authenticate
from pacs.index.db import IndexUnavailable, transaction
from pacs.service import Services
from pacs.settings import Settings

SESSION_COOKIE: Final = "yy_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="A token from `yunying token create`")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The browser session of POST /api/session; requests that change something also need X-CSRF-Token",
)


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle_timeout=timedelta(seconds=settings.session_idle_timeout_s),
        lifetime=timedelta(seconds=settings.session_lifetime_s),
    )


def session_principal(request: Request, secret: str) -> Principal:
    """The caller of a request that carries the session cookie, or 401; 403 for a state-changing
    request without the session's CSRF token."""
    services = services_of(request)
    policy = session_policy(services.settings)
    try:
        with transaction(services.sessions, read_only=True) as session:
            found = resolve_session(session, secret, policy=policy)
        if found is not None and found.touch_due:
            with transaction(services.sessions) as session:
                touch(session, found.row.id)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    if found is None:
        raise HTTPException(
            401,
            "your session has ended (idle too long, expired, logged out or deactivated): "
            "log in again (POST /api/session)",
            headers={"Set-Cookie": expired_cookie(services.settings)},
        )
    if request.method not in SAFE_METHODS and not csrf_token_matches(secret, request.headers.get(CSRF_HEADER)):
        raise HTTPException(
            403,
            f"a {request.method} with the session cookie needs the header {CSRF_HEADER}: the csrf_token of "
            "POST or GET /api/session",
        )
    request.state.principal = found.principal
    return found.principal


def expired_cookie(settings: Settings) -> str:
    """A Set-Cookie header value that makes the browser forget the session cookie."""
    secure = "; Secure" if settings.cookie_secure else ""
    return f'{SESSION_COOKIE}=""; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{secure}'


def client_address(request: Request) -> str | None:
    """The caller's address as the audit records it (the proxy's forwarded one where trusted)."""
    return request.client.host if request.client else None


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session_cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """The caller, or 401. The answer never says whether a token was unknown, expired or revoked.
    A bearer token wins over a session cookie sent along with it."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        if session_cookie:
            return session_principal(request, session_cookie)
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>' (create one with `yunying token create`), "
            "or log in (POST /api/session) and send its cookie",
            headers={"WWW-Authenticate": "Bearer"},
        )
    services = services_of(request)
    source = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    key = f"addr:{source}"
    try:
        verdict = throttle.check(key)
        if verdict.blocked:
            raise _too_many(verdict.retry_after_s)
        with transaction(services.sessions, read_only=True) as session:
            found = authenticate(session, credentials.credentials, touch=False)
        if found is None:
            verdict = throttle.fail(key)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    if found is None:
        services.audit.record(
            NOBODY,
            "authenticate",
            outcome="denied",
            source=source,
            token_prefix=credentials.credentials[:8],
            path=request.url.path,
            blocked=verdict.newly_blocked,
        )
        if verdict.blocked:
            raise _too_many(verdict.retry_after_s)
        raise HTTPException(
            401, "invalid, expired or revoked token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    if found.token_id is not None:
        services.audit.touch_token(found.token_id)
    request.state.principal = found
    return found


Authenticated = Annotated[Principal, Depends(principal)]

# Who a failed authentication is audited as: nobody known.
NOBODY = Principal(
    user_id=None, username="unknown", role="none", is_service=False, scope=Scope(frozenset()), token_id=None
)


def _throttle(request: Request) -> FailureThrottle:
    state = request.app.state
    if getattr(state, "auth_throttle", None) is None:
        settings = services_of(request).settings
        state.auth_throttle = FailureThrottle(
            services_of(request).sessions, settings.auth_failure_limit, settings.auth_failure_window_s
        )
    throttle: FailureThrottle = state.auth_throttle
    return throttle


def _too_many(retry_after_s: int) -> HTTPException:
    return HTTPException(
        429,
        f"too many failed authentications from your address; retry in {retry_after_s} s with a valid token",
        headers={"Retry-After": str(retry_after_s)},
    )
