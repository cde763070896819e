"""``/api/admin/users``: people of a consortium and their logins — what ``yunying user add``,
``user password`` and ``user disable|enable`` do, for the administration page. Admins only, and
only for users of the consortium they administer (an installation admin: every user). Every
change is an administrative audit record in its own transaction (pacs.index.db.append_change);
a refusal is 422 with a ``code`` the page translates (deps.refused)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pacs.identity.passwords import MAX_LENGTH, set_password
from pacs.identity.sites import IdentityError
from pacs.identity.users import Principal, add_user, set_active
from pacs.index.models import Consortium, Role, Site, User
from reading.api.deps import AdminCaller, refused, require_role, unit_of_work
from reading.errors import NotFound
from reading.models import Reader

router = APIRouter(prefix="/admin/users", tags=["administration"])


class UserBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    role: str
    display_name: str | None = Field(default=None, max_length=200)
    site_id: int | None = Field(default=None, description="The site of a site user")
    consortium: str | None = Field(
        default=None, description="Of an admin, QA or reader; a consortium's admin may leave it out (his own)"
    )
    password: str = Field(min_length=1, max_length=MAX_LENGTH, description="The first password for browser login")


class PasswordBody(BaseModel):
    password: str = Field(min_length=1, max_length=MAX_LENGTH)


class ActiveBody(BaseModel):
    active: bool


def within(who: Principal) -> Any:
    """A condition on ``User``: the users a consortium's admin administers — his consortium's
    admins, QA and readers, the users of its sites, the readers who read for it."""
    if who.consortium_id is None:
        return None
    sites = select(Site.id).where(Site.consortium_id == who.consortium_id)
    readers = select(Reader.user_id).where(Reader.consortium_id == who.consortium_id)
    return or_(User.consortium_id == who.consortium_id, User.site_id.in_(sites), User.id.in_(readers))


def _user_json(user: User, site: str | None, consortium: str | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "site": site,
        "consortium": consortium,
        "service": user.is_service,
        "has_password": user.password_hash is not None,
        "active": user.active,
    }


def _user_in_scope(session: Session, who: Principal, username: str) -> User:
    require_role(who, Role.ADMIN)
    statement = select(User).where(User.username == username)
    condition = within(who)
    if condition is not None:
        statement = statement.where(condition)
    user = session.scalar(statement)
    if user is None:
        raise NotFound(f"no user {username!r} in the consortium you administer")
    return user


def _described(session: Session, user: User) -> dict[str, Any]:
    site = session.get(Site, user.site_id) if user.site_id is not None else None
    consortium = session.get(Consortium, user.consortium_id) if user.consortium_id is not None else None
    return _user_json(user, site.name if site else None, consortium.name if consortium else None)


@router.get("")
def list_users(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    """The users the admin administers, people and service accounts, never a password or token."""
    with unit_of_work(request, read_only=True) as session:
        statement = (
            select(User, Site.name, Consortium.name)
            .outerjoin(Site, Site.id == User.site_id)
            .outerjoin(Consortium, Consortium.id == User.consortium_id)
            .order_by(User.username)
        )
        condition = within(who)
        if condition is not None:
            statement = statement.where(condition)
        return [_user_json(user, site, consortium) for user, site, consortium in session.execute(statement)]


@router.post("", status_code=201, response_model=None)
def create_user(request: Request, who: AdminCaller, body: UserBody) -> dict[str, Any] | JSONResponse:
    """Add a person with a role and a first password (he changes it with the administrator's
    help: there is no self-service yet). A site user's site must be one the admin administers."""
    try:
        with unit_of_work(request) as session:
            site_name: str | None = None
            if body.role == Role.SITE:
                site = session.get(Site, body.site_id) if body.site_id is not None else None
                if site is None or not who.scope.allows(site.id):
                    raise IdentityError("a site user needs one of your sites", code="site_needed", field="site_id")
                site_name = site.name
            consortium = body.consortium or None
            if who.consortium_id is not None:
                own = session.get_one(Consortium, who.consortium_id)
                if consortium is not None and consortium != own.name:
                    raise IdentityError(
                        f"you administer the consortium {own.name!r}, not {consortium!r}",
                        code="consortium_not_yours",
                        field="consortium",
                        name=consortium,
                    )
                consortium = own.name
            user = add_user(
                session,
                username=body.username,
                role=body.role,
                site=site_name,
                consortium=None if site_name else consortium,
                display_name=body.display_name or None,
                actor=who.username,
            )
            set_password(session, user, body.password, actor=who.username)
            return _described(session, user)
    except IdentityError as exc:
        return refused(exc)


@router.put("/{username}/password", response_model=None)
def reset_password(
    request: Request, who: AdminCaller, username: str, body: PasswordBody
) -> dict[str, Any] | JSONResponse:
    """Set a user's password (a forgotten one): every open browser session of his ends."""
    try:
        with unit_of_work(request) as session:
            user = _user_in_scope(session, who, username)
            ended = set_password(session, user, body.password, actor=who.username)
            return {**_described(session, user), "sessions_ended": ended}
    except IdentityError as exc:
        return refused(exc)


@router.put("/{username}/active", response_model=None)
def put_active(request: Request, who: AdminCaller, username: str, body: ActiveBody) -> dict[str, Any] | JSONResponse:
    """Deactivate a user (his tokens and sessions stop working at once) or reactivate him. An
    admin cannot deactivate himself: the consortium would be left without its administrator."""
    try:
        with unit_of_work(request) as session:
            user = _user_in_scope(session, who, username)
            if not body.active and user.id == who.user_id:
                raise IdentityError("you cannot deactivate yourself", code="deactivate_self")
            set_active(session, user, body.active, actor=who.username)
            return _described(session, user)
    except IdentityError as exc:
        return refused(exc)
