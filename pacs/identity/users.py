"""Users, service accounts and their API tokens, and what each may see (its scope).

A token is ``yy_`` + 43 URL-safe random characters (256 bits); only its SHA-256 is stored, so
a leaked database does not leak usable tokens, and a plain hash is enough for that much
entropy (no password stretching needed). Tokens expire and can be revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from pacs import events
from pacs.identity.sites import IdentityError, find_site
from pacs.index.db import append_change
from pacs.index.models import ApiToken, BreakGlass, Consortium, Role, Site, User, UserGrant, WebSession
from pacs.index.types import utcnow

TOKEN_PREFIX = "yy_"
DEFAULT_TOKEN_DAYS = 365
MAX_TOKEN_DAYS = 3650  # ten years: a forgotten token should still end some day


@dataclass(frozen=True)
class Scope:
    """The sites whose studies a principal may see (``None``: every site), and single studies
    beyond them opened by an audited break-glass."""

    site_ids: frozenset[int] | None
    study_uids: frozenset[str] = frozenset()

    def allows(self, site_id: int, study_uid: str | None = None) -> bool:
        return (
            self.site_ids is None
            or site_id in self.site_ids
            or (study_uid is not None and study_uid in self.study_uids)
        )

    def condition(self, site_column: Any, study_uid_column: Any) -> Any:
        """A SQL condition on a study's site and UID; ``None`` when the scope is everything."""
        if self.site_ids is None:
            return None
        within = site_column.in_(sorted(self.site_ids))
        return or_(within, study_uid_column.in_(sorted(self.study_uids))) if self.study_uids else within


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved from a token — or, for DICOM, from the calling AE (no user, no
    token: ``username`` is ``ae:TITLE``): the subject of every access check and audit record."""

    user_id: int | None
    username: str
    role: str
    is_service: bool
    scope: Scope
    token_id: int | None
    consortium_id: int | None = None
    site_id: int | None = None
    session_id: int | None = None  # a browser session (pacs/identity/sessions.py) instead of a token


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    session: Session,
    *,
    username: str,
    role: str,
    site: str | None = None,
    consortium: str | None = None,
    display_name: str | None = None,
    is_service: bool = False,
    actor: str = "cli",
) -> User:
    """Create a user or service account. A ``site`` user needs a site; ``qa`` and ``admin`` are
    bound to a consortium (an admin without one administers the whole installation)."""
    if role not in {r.value for r in Role}:
        raise IdentityError(
            f"unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}", code="role_invalid", field="role"
        )
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise IdentityError("a username is 1-64 characters without spaces", code="username_invalid", field="username")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise IdentityError(
            f"user {username!r} exists already (see `yunying user list`)",
            code="user_exists",
            field="username",
            username=username,
        )
    site_row: Site | None = None
    consortium_row: Consortium | None = None
    if site is not None:
        site_row = find_site(session, site)
        consortium_row = site_row.consortium
    elif consortium is not None:
        consortium_row = session.scalar(select(Consortium).where(Consortium.name == consortium))
        if consortium_row is None:
            raise IdentityError(
                f"no consortium named {consortium!r} (see `yunying site list`)",
                code="consortium_unknown",
                field="consortium",
                name=consortium,
            )
    if role == Role.SITE and site_row is None:
        raise IdentityError("a site user needs --site", code="site_needed", field="site")
    if role == Role.QA and consortium_row is None:
        raise IdentityError("a QA user needs --consortium", code="consortium_needed", field="consortium")
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        is_service=is_service,
        site_id=site_row.id if site_row else None,
        consortium_id=consortium_row.id if consortium_row else None,
    )
    session.add(user)
    session.flush()
    append_change(session, events.USER_CREATED, actor=actor, user=username, role=role, site_id=user.site_id)
    return user


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise IdentityError(
            f"no user named {username!r} (see `yunying user list`)", code="user_unknown", username=username
        )
    return user


def create_token(
    session: Session, user: User, *, name: str | None = None, days: int | None = DEFAULT_TOKEN_DAYS, actor: str = "cli"
) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the token itself, which is never stored."""
    if not user.active:
        raise IdentityError(
            f"user {user.username!r} is deactivated", code="user_inactive", field="account", username=user.username
        )
    if days is not None and not 0 < days <= MAX_TOKEN_DAYS:
        raise IdentityError(
            f"a token's lifetime is 1 to {MAX_TOKEN_DAYS} days, not {days}",
            code="token_days_invalid",
            field="days",
            max=MAX_TOKEN_DAYS,
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_sha256=_sha256(token),
        prefix=token[:10],
        created_at=now,
        expires_at=now + timedelta(days=days) if days is not None else None,
    )
    session.add(row)
    session.flush()
    append_change(session, events.TOKEN_CREATED, actor=actor, user=user.username, token_id=row.id)
    return row, token


def revoke_token(session: Session, token_id: int, *, actor: str = "cli") -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise IdentityError(f"no token with id {token_id} (see `yunying token list`)", code="token_unknown")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        append_change(session, events.TOKEN_REVOKED, actor=actor, token_id=token_id)
    return row


def grant_scope(
    session: Session, user: User, *, site: Site | None = None, consortium: Consortium | None = None, actor: str = "cli"
) -> UserGrant:
    """Let ``user`` see one more site's or a whole consortium's studies (the sites a reader reads
    for). Granting what is already granted returns the existing grant."""
    if (site is None) == (consortium is None):
        raise IdentityError("grant either a site or a consortium")
    site_id = site.id if site is not None else None
    consortium_id = consortium.id if consortium is not None else None
    existing = session.scalar(
        select(UserGrant).where(
            UserGrant.user_id == user.id,
            UserGrant.site_id.is_(None) if site_id is None else UserGrant.site_id == site_id,
            UserGrant.consortium_id.is_(None) if consortium_id is None else UserGrant.consortium_id == consortium_id,
        )
    )
    if existing is not None:
        return existing
    grant = UserGrant(user_id=user.id, site_id=site_id, consortium_id=consortium_id)
    session.add(grant)
    session.flush()
    append_change(
        session, events.USER_GRANTED, actor=actor, user=user.username, site_id=site_id, consortium_id=consortium_id
    )
    return grant


def granted_site_ids(session: Session, user_id: int) -> frozenset[int]:
    """The sites a user was granted, directly or through their consortium."""
    direct = select(UserGrant.site_id).where(UserGrant.user_id == user_id, UserGrant.site_id.is_not(None))
    through = select(Site.id).where(
        Site.consortium_id.in_(
            select(UserGrant.consortium_id).where(UserGrant.user_id == user_id, UserGrant.consortium_id.is_not(None))
        )
    )
    return frozenset(int(i) for i in session.scalars(direct.union(through)) if i is not None)


def scope_of(session: Session, user: User) -> Scope:
    """Site users see their site; consortium admins and QA their consortium's sites; an
    installation admin everything. Readers see the sites they read for (their grants, given by
    reading's administration); which tasks they may claim within them is reading's business."""
    if user.role == Role.SITE:
        return Scope(frozenset({user.site_id}) if user.site_id is not None else frozenset())
    if user.role in {Role.ADMIN, Role.QA}:
        if user.consortium_id is None:
            return Scope(None) if user.role == Role.ADMIN else Scope(frozenset())
        ids = session.scalars(select(Site.id).where(Site.consortium_id == user.consortium_id))
        return Scope(frozenset(ids))
    if user.role == Role.READER:
        opened = session.scalars(
            select(BreakGlass.study_uid).where(BreakGlass.user_id == user.id, BreakGlass.expires_at > utcnow())
        )
        return Scope(granted_site_ids(session, user.id), frozenset(opened))
    return Scope(frozenset())


TOUCH_EVERY = timedelta(minutes=5)


def authenticate(session: Session, token: str, *, now: datetime | None = None, touch: bool = True) -> Principal | None:
    """The principal a bearer token stands for; ``None`` for an unknown, expired or revoked
    token or a deactivated user (the caller answers 401 without saying which). ``touch``: record
    the use (at most every 5 minutes); the web process leaves that to its access log's writer
    so that a request only reads."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = now or utcnow()
    found = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_sha256 == _sha256(token))
    ).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now) or not user.active:
        return None
    if touch and (row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY):  # not one write per request
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return principal_of(session, user, token_id=row.id)


def principal_of(
    session: Session, user: User, *, token_id: int | None = None, session_id: int | None = None
) -> Principal:
    """The principal ``user`` acts as, through a token or a browser session."""
    return Principal(
        user.id,
        user.username,
        user.role,
        user.is_service,
        scope_of(session, user),
        token_id,
        consortium_id=user.consortium_id,
        site_id=user.site_id,
        session_id=session_id,
    )


def end_sessions(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """Revoke every open browser session of a user (password changed, user deactivated);
    returns how many were open."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_active(session: Session, user: User, active: bool, *, actor: str = "cli") -> bool:
    """Deactivate a user (his tokens and browser sessions stop working at once: both are checked
    against ``active`` on every request, and his sessions are revoked) or reactivate him.
    Returns whether anything changed."""
    if user.active == active:
        return False
    user.active = active
    ended = 0 if active else end_sessions(session, user.id)
    kind = events.USER_REACTIVATED if active else events.USER_DEACTIVATED
    append_change(session, kind, actor=actor, user=user.username, sessions_ended=ended)
    return True
