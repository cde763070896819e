"""The access audit: one record per access to patient data (who, role, action, study or
patient, when, from where, outcome), in the spirit of IHE ATNA. Issue E hash-chains and
reports on these rows.

One record per principal, study and action: a search is one record for the query (with the
number of studies answered), a study's retrieval one record — never one per frame.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from pacs.identity.users import TOUCH_EVERY, Principal
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import AccessRecord, ApiToken
from pacs.index.types import utcnow

log = structlog.get_logger(__name__)


def record_access(
    sessions: sessionmaker[Session],
    principal: Principal,
    action: str,
    *,
    outcome: str = "success",
    study_uid: str | None = None,
    patient_id: str | None = None,
    site_id: int | None = None,
    source: str | None = None,
    **detail: Any,
) -> None:
    """Write one access record in its own transaction. An index outage is logged, not raised:
    the request that caused it has already been answered from the same index."""
    record = _Pending(principal, action, outcome, study_uid, patient_id, site_id, source, detail, utcnow())
    try:
        with transaction(sessions) as session:
            session.add(record.row())
    except IndexUnavailable as exc:
        log.error("audit.unwritten", user=principal.username, action=action, study_uid=study_uid, error=str(exc))


@dataclass(frozen=True)
class _Pending:
    principal: Principal
    action: str
    outcome: str
    study_uid: str | None
    patient_id: str | None
    site_id: int | None
    source: str | None
    detail: dict[str, Any]
    at: datetime

    def row(self) -> AccessRecord:
        return AccessRecord(
            at=self.at,
            user_id=self.principal.user_id,
            username=self.principal.username,
            role=self.principal.role,
            action=self.action,
            study_uid=self.study_uid,
            patient_id=self.patient_id,
            site_id=self.site_id,
            source=self.source,
            outcome=self.outcome,
            detail=self.detail,
        )


@dataclass(frozen=True)
class _Flush:
    done: threading.Event


@dataclass(frozen=True)
class _Touch:
    token_id: int
    at: datetime


class AccessLog:
    """Access records written off the request path, at most once per session.

    ``record`` queues a record for a background writer (one short transaction per batch);
    ``record_once`` queues one only the first time a principal's token (its "session") does
    ``action`` to a study within ``window_s`` — opening a 300-slice study is one record, not
    300 (issue B). ``close`` writes what is queued. Records still queued when a process is
    killed are lost; the log says how many were written per batch.
    """

    def __init__(self, sessions: sessionmaker[Session], *, window_s: float = 8 * 3600, batch: int = 200) -> None:
        self.sessions = sessions
        self.window_s = window_s
        self.batch = batch
        self._queue: queue.Queue[_Pending | _Flush | _Touch | None] = queue.Queue()
        self._seen: dict[tuple[Any, ...], float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_forever, name="access-log", daemon=True)
        self._thread.start()

    def record(
        self,
        principal: Principal,
        action: str,
        *,
        outcome: str = "success",
        study_uid: str | None = None,
        patient_id: str | None = None,
        site_id: int | None = None,
        source: str | None = None,
        **detail: Any,
    ) -> None:
        self._queue.put(_Pending(principal, action, outcome, study_uid, patient_id, site_id, source, detail, utcnow()))

    def record_once(self, principal: Principal, action: str, *, study_uid: str, **kwargs: Any) -> bool:
        """Queue the record unless this token (or browser session) already did ``action`` to the
        study with the same outcome within the window (a refusal does not hide a later granted
        access, nor the reverse); returns whether one was queued."""
        outcome = kwargs.get("outcome", "success")
        key = (principal.user_id, principal.token_id, principal.session_id, action, study_uid, outcome)
        if not self._first_within(key, self.window_s):
            return False
        self.record(principal, action, study_uid=study_uid, **kwargs)
        return True

    def touch_token(self, token_id: int) -> None:
        """Record that a token was used (``ApiToken.last_used_at``), at most every 5 minutes
        per token, by the writer thread rather than the request."""
        if self._first_within(("touch", token_id), TOUCH_EVERY.total_seconds()):
            self._queue.put(_Touch(token_id, utcnow()))

    def _first_within(self, key: tuple[Any, ...], window_s: float) -> bool:
        """True the first time ``key`` is seen within ``window_s``; remembers it from now."""
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < window_s:
                return False
            self._seen[key] = now
            if len(self._seen) > 100_000:  # forget what is older than the longest window
                longest = max(self.window_s, TOUCH_EVERY.total_seconds())
                self._seen = {k: t for k, t in self._seen.items() if now - t < longest}
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (tests and shutdown)."""
        done = threading.Event()
        self._queue.put(_Flush(done))
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _write_forever(self) -> None:
        while True:
            first = self._queue.get()
            items = [first]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [item for item in items if isinstance(item, _Pending)]
            touches = [item for item in items if isinstance(item, _Touch)]
            if records or touches:
                self._write(records, touches)
            for item in items:
                if isinstance(item, _Flush):
                    item.done.set()
            if any(item is None for item in items):
                return

    def _write(self, records: list[_Pending], touches: list[_Touch]) -> None:
        try:
            with transaction(self.sessions) as session:
                for touch in touches:
                    session.execute(update(ApiToken).where(ApiToken.id == touch.token_id).values(last_used_at=touch.at))
                session.add_all(record.row() for record in records)
        except IndexUnavailable as exc:
            log.error("audit.unwritten", records=len(records), error=str(exc))
        except Exception as exc:
            log.exception("audit.write_failed", records=len(records), error=str(exc))
