"""``/api/admin/tokens``: API tokens of service accounts (a RIS, a workstation, an edge) — what
``yunying token create|list|revoke`` do, for the administration page. Admins only, for the
service accounts of the consortium they administer; a person logs in with his password and gets
no token here. The token itself is answered once, at creation (only its SHA-256 is kept); every
change is an administrative audit record in its own transaction (pacs.index.db.append_change); a
refusal is 422 with a ``code`` the page translates (deps.refused)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.identity.sites import IdentityError
from pacs.identity.users import DEFAULT_TOKEN_DAYS, Principal, add_user, create_token, revoke_token
from pacs.index.models import ApiToken, Role, Site, User
from pacs.index.types import utcnow
from reading.api.admin_users import within
from reading.api.deps import AdminCaller, refused, unit_of_work
from reading.errors import NotFound

router = APIRouter(prefix="/admin/tokens", tags=["administration"])


class TokenBody(BaseModel):
    account: str = Field(min_length=1, max_length=64, description="A service account; created when new (give site_id)")
    site_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="A new service account's site")
    name: str | None = Field(default=None, max_length=200, description="What the token is for, e.g. 'RIS at Fudong'")
    days: int = Field(default=DEFAULT_TOKEN_DAYS, description="Days until it expires")


def _state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= utcnow():
        return "expired"
    return "active"


def _token_json(token: ApiToken, account: str) -> dict[str, Any]:
    """A token as listed: never the token, never its hash — its first characters to recognise it."""
    return {
        "id": token.id,
        "account": account,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "state": _state(token),
    }


def _service_account(session: Session, who: Principal, body: TokenBody) -> User:
    """The service account the token is for: one of the admin's, or a new one at his site."""
    account = body.account.strip()
    existing = session.scalar(select(User).where(User.username == account))
    if existing is not None:
        condition = within(who)
        mine = condition is None or session.scalar(select(User.id).where(User.id == existing.id, condition))
        if not mine:
            raise IdentityError(
                f"user {account!r} exists already", code="user_exists", field="account", username=account
            )
        if not existing.is_service:
            raise IdentityError(
                f"{account!r} is a person: he logs in with his password; tokens are for service accounts",
                code="token_for_person",
                field="account",
                username=account,
            )
        return existing
    site = session.get(Site, body.site_id) if body.site_id is not None else None
    if site is None or not who.scope.allows(site.id):
        raise IdentityError(
            f"a new service account {account!r} needs one of your sites",
            code="service_site_needed",
            field="site_id",
            username=account,
        )
    try:
        return add_user(session, username=account, role=Role.SITE, site=site.name, is_service=True, actor=who.username)
    except IdentityError as exc:
        if exc.field == "username":  # the page's input is the account
            exc.field = "account"
        raise


@router.get("")
def list_tokens(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    """The tokens of the accounts the admin administers, newest first; never a token itself."""
    with unit_of_work(request, read_only=True) as session:
        statement = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id.desc())
        condition = within(who)
        if condition is not None:
            statement = statement.where(condition)
        return [_token_json(token, username) for token, username in session.execute(statement)]


@router.post("", status_code=201, response_model=None)
def create(request: Request, who: AdminCaller, body: TokenBody) -> dict[str, Any] | JSONResponse:
    """A new token for a service account (created at one of the admin's sites when new). The
    answer's ``token`` is the only time it is shown: keep it in the service's configuration."""
    try:
        with unit_of_work(request) as session:
            account = _service_account(session, who, body)
            row, token = create_token(
                session, account, name=(body.name or "").strip() or None, days=body.days, actor=who.username
            )
            return {**_token_json(row, account.username), "token": token}
    except IdentityError as exc:
        return refused(exc)


@router.delete("/{token_id}")
def revoke(request: Request, who: AdminCaller, token_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> dict[str, Any]:
    """Revoke a token at once: the next request with it is a 401. Revoking it again is harmless."""
    with unit_of_work(request) as session:
        statement = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
        statement = statement.where(ApiToken.id == token_id)
        condition = within(who)
        if condition is not None:
            statement = statement.where(condition)
        found = session.execute(statement).first()
        if found is None:
            raise NotFound(f"no token {token_id} of an account you administer")
        row = revoke_token(session, token_id, actor=who.username)
        return _token_json(row, found[1])
