"""Bearer-token authentication for every DICOMweb route (``Authenticated``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pacs.identity.users import Principal, authenticate
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
    try:
        services = services_of(request)
        with transaction(services.sessions, read_only=True) as session:
            found = authenticate(session, credentials.credentials, touch=False)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    if found is None:
        raise HTTPException(
            401, "invalid, expired or revoked token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    if found.token_id is not None:
        services.audit.touch_token(found.token_id)
    request.state.principal = found
    return found


Authenticated = Annotated[Principal, Depends(principal)]
