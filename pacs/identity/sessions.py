"""Browser sessions: what a login opens and the ``yy_session`` cookie carries.

A session id is 256 random bits; only its SHA-256 is stored (like a token's), so that a leaked
database opens no session, and the sessions live in the index so that any web process serves
any request (DESIGN.md: web processes are stateless). A session ends when

- it is idle: no request for ``idle_timeout`` (the last request is recorded at most every
  ``touch_every``, not on each of the hundreds of frame requests of one study),
- it is old: ``lifetime`` after login, however busy,
- it is revoked: logout, a new password, the user deactivated,
- its user is deactivated (checked on every request as well).

The CSRF token of a session is an HMAC of its id: the server stores nothing more, any web
process can check it, and it gives nothing away of the id it is derived from.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pacs.identity.users import Principal, principal_of
from pacs.index.models import User, WebSession
from pacs.index.types import utcnow

SESSION_BYTES: Final = 32
_CSRF_CONTEXT: Final = b"yunying csrf token v1"
# Dead sessions are kept this long (for `yunying user sessions`-style inspection), then deleted.
KEEP_DEAD: Final = timedelta(days=7)


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout: timedelta
    lifetime: timedelta

    @property
    def touch_every(self) -> timedelta:
        """How stale the recorded last request may be: a quarter of the idle timeout, at most a
        minute (a session then dies between idle_timeout − touch_every and idle_timeout)."""
        return min(timedelta(minutes=1), self.idle_timeout / 4)


@dataclass(frozen=True)
class OpenedSession:
    row: WebSession
    secret: str  # the cookie's value: given to the browser once, never stored

    @property
    def csrf_token(self) -> str:
        return csrf_token_of(self.secret)


@dataclass(frozen=True)
class Resolved:
    principal: Principal
    user: User
    row: WebSession
    touch_due: bool  # the caller records the request with ``touch`` (in a write transaction)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token_of(secret: str) -> str:
    return hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_token_matches(secret: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(csrf_token_of(secret).encode(), given.encode())


def open_session(
    session: Session, user: User, *, policy: SessionPolicy, source: str | None, now: datetime | None = None
) -> OpenedSession:
    """A new session for ``user`` (whose password was just checked). Sessions dead for a week
    are deleted on the way, so the table holds about a week of logins."""
    now = now or utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at < now - KEEP_DEAD))
    secret = secrets.token_urlsafe(SESSION_BYTES)
    row = WebSession(
        user_id=user.id,
        secret_sha256=_sha256(secret),
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.lifetime,
        source=(source or "")[:64] or None,
    )
    session.add(row)
    session.flush()
    return OpenedSession(row, secret)


def resolve_session(
    session: Session, secret: str, *, policy: SessionPolicy, now: datetime | None = None
) -> Resolved | None:
    """The principal a session cookie stands for, or ``None`` when the session is unknown,
    idle too long, past its lifetime, revoked, or its user deactivated (the caller answers 401
    without saying which). Reads only; see ``Resolved.touch_due``."""
    if not secret or len(secret) > 100:
        return None
    now = now or utcnow()
    found = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.secret_sha256 == _sha256(secret))
    ).first()
    if found is None:
        return None
    row, user = found
    if (
        row.revoked_at is not None
        or row.expires_at <= now
        or now - row.last_seen_at >= policy.idle_timeout
        or not user.active
    ):
        return None
    touch_due = now - row.last_seen_at >= policy.touch_every
    return Resolved(principal_of(session, user, session_id=row.id), user, row, touch_due)


def touch(session: Session, session_id: int, *, now: datetime | None = None) -> None:
    """Record a request of the session now (it stays alive for another idle timeout)."""
    session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
        .values(last_seen_at=now or utcnow())
    )


def close_replaced(session: Session, secret: str, *, user_id: int, now: datetime | None = None) -> None:
    """A browser that logs in while it still holds a session of the same user: that session
    ends (the cookie is replaced), rather than live on, unreachable, until it times out."""
    session.execute(
        update(WebSession)
        .where(
            WebSession.secret_sha256 == _sha256(secret),
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
        )
        .values(revoked_at=now or utcnow())
    )


def close_session(session: Session, session_id: int, *, now: datetime | None = None) -> None:
    """Logout: the session is revoked in the index, so no web process accepts it again."""
    session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
