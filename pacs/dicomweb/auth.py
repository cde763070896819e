"""Bearer-token authentication for every DICOMweb route (``Authenticated``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pacs.identity.throttle import FailureThrottle
from pacs.identity.users import Principal, Scope, authenticate
from pacs.index.db import IndexUnavailable, transaction
from pacs.service import Services

_bearer = HTTPBearer(auto_error=False, description="A token from `yunying token create`")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, or 401. The answer never says whether a token was unknown, expired or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>' (create one with `yunying token create`)",
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
