"""Failed authentication, slowed down per key — a source address (``addr:10.1.2.3``) or a login
name (``login:li``): after ``limit`` failures in ``window_s`` the key is refused (HTTP 429,
``Retry-After``) until its oldest failure leaves the window — whatever it sends, valid
credentials too, so guessing cannot go on.

The failures live in the index (``auth_failure``), not in the process: behind a reverse proxy
every web process sees the same count, so N web processes do not give a guesser N × the limit
(tests/reliability/test_web_tier.py). Each failure also prunes what has left the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.db import transaction
from pacs.index.models import AuthFailure
from pacs.index.types import utcnow


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    retry_after_s: int = 0
    newly_blocked: bool = False  # this failure started the block (audited once)


def verdict(count: int, oldest: datetime | None, now: datetime, limit: int, window_s: float) -> Verdict:
    """Blocked when ``count`` failures within the window reach ``limit``; free again when the
    oldest of them leaves it."""
    if count < limit or oldest is None:
        return Verdict(False)
    left = window_s - (now - oldest).total_seconds()
    return Verdict(True, max(1, int(left) + 1), newly_blocked=count == limit)


class FailureThrottle:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.limit = limit
        self.window_s = window_s
        self.clock = clock

    def _recent(self, session: Session, key: str, now: datetime) -> tuple[int, datetime | None]:
        since = now - timedelta(seconds=self.window_s)
        count, oldest = session.execute(
            select(func.count(), func.min(AuthFailure.at)).where(AuthFailure.key == key, AuthFailure.at > since)
        ).one()
        return int(count), oldest

    def check(self, key: str) -> Verdict:
        """Whether ``key`` is refused now (``IndexUnavailable`` when the index is down)."""
        now = self.clock()
        with transaction(self.sessions, read_only=True) as session:
            count, oldest = self._recent(session, key, now)
        found = verdict(count, oldest, now, self.limit, self.window_s)
        return Verdict(found.blocked, found.retry_after_s)

    def forgive(self, key: str) -> None:
        """Forget the failures of ``key`` (a login name whose password then proved right)."""
        with transaction(self.sessions) as session:
            session.execute(delete(AuthFailure).where(AuthFailure.key == key))

    def fail(self, key: str) -> Verdict:
        """Count one failure of ``key``; returns whether it is now refused."""
        now = self.clock()
        with transaction(self.sessions) as session:
            session.execute(delete(AuthFailure).where(AuthFailure.at <= now - timedelta(seconds=self.window_s)))
            session.add(AuthFailure(key=key, at=now))
            session.flush()
            count, oldest = self._recent(session, key, now)
        return verdict(count, oldest, now, self.limit, self.window_s)
