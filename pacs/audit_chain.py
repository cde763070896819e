"""The access audit's hash chain: sealing, verification, search, export and retention.

Records are written unsealed, off the read path (``pacs/audit.py``). A background sealer
(``AuditSealer``) takes them in id order and gives each the next place in the chain
(``chain_seq``) and a digest: HMAC-SHA256 under the audit key of the previous record's digest
and the record's canonical JSON. After each round it writes a checkpoint (``audit_seal``) with
the last place and digest. ``verify`` walks the chain again and reports:

* an altered record: its digest no longer matches (the next records still verify, since each
  is checked against the stored digest before it — the report names only the altered one);
* deleted records: a gap in the places (a record "unsealed" by clearing its place is a gap too);
* records cut off the end: a checkpoint names a place, or a digest, that is no longer there;
* a forged record: without the key its digest cannot be made.

The key is not in the database, so whoever can write the database can delete the whole chain
and its checkpoints but cannot re-seal what he altered; the sealer also logs every checkpoint
(``audit.sealed``), a copy outside the database to compare against.

Retention (``prune``) deletes the oldest sealed records and leaves a ``prune`` checkpoint: the
surviving chain verifies from the place and digest it names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import structlog
from sqlalchemy import ColumnElement, and_, delete, func, select, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.events import ADMINISTRATIVE
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, AuditSeal
from pacs.index.types import utcnow
from pacs.periodic import Periodic
from pacs.settings import Settings

log = structlog.get_logger(__name__)

GENESIS: Final = "0" * 64  # the "previous digest" of the first record ever sealed
_LOCK_ID: Final = 0x59_41_55_44  # pg_advisory_xact_lock: one sealer at a time on PostgreSQL
_SEAL_BATCH: Final = 2_000


@dataclass(frozen=True)
class AuditKey:
    secret: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditKey:
        """YUNYING_AUDIT_KEY, or a key derived from YUNYING_SECRET_KEY."""
        if settings.audit_key:
            return cls(settings.audit_key.encode())
        return cls(hmac.new(settings.secret_key.encode(), b"yunying audit chain v1", hashlib.sha256).digest())

    @property
    def key_id(self) -> str:
        """A fingerprint that names the key in checkpoints without revealing it."""
        return hashlib.sha256(b"key-id:" + self.secret).hexdigest()[:16]

    def digest(self, previous: str, record: AccessRecord) -> str:
        return hmac.new(self.secret, previous.encode() + b"\n" + canonical(record), hashlib.sha256).hexdigest()


def canonical(record: AccessRecord) -> bytes:
    """The record as sealed: every field but the digest, as sorted, compact JSON."""
    document = {
        "id": record.id,
        "chain_seq": record.chain_seq,
        "at": record.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "user_id": record.user_id,
        "username": record.username,
        "role": record.role,
        "action": record.action,
        "study_uid": record.study_uid,
        "patient_id": record.patient_id,
        "site_id": record.site_id,
        "source": record.source,
        "outcome": record.outcome,
        "detail": record.detail or {},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def accesses() -> ColumnElement[bool]:
    """Records of access to patient data, leaving out administrative changes."""
    return AccessRecord.action.not_in(sorted(ADMINISTRATIVE))


def record_json(record: AccessRecord) -> dict[str, Any]:
    """One record as exported and answered by the API (its place and digest included)."""
    return {
        "id": record.id,
        "at": record.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "user_id": record.user_id,
        "username": record.username,
        "role": record.role,
        "action": record.action,
        "study_uid": record.study_uid,
        "patient_id": record.patient_id,
        "site_id": record.site_id,
        "source": record.source,
        "outcome": record.outcome,
        "detail": record.detail or {},
        "chain_seq": record.chain_seq,
        "digest": record.digest,
    }


def _start(session: Session) -> tuple[int, str]:
    """Where the surviving chain starts: after the last prune, or at the beginning."""
    pruned = session.execute(
        select(AuditSeal.chain_seq, AuditSeal.digest)
        .where(AuditSeal.kind == "prune")
        .order_by(AuditSeal.chain_seq.desc())
        .limit(1)
    ).first()
    return (pruned[0], pruned[1]) if pruned else (0, GENESIS)


def chain_head(session: Session) -> tuple[int, str]:
    """The last sealed place and its digest (the start when nothing survives)."""
    last = session.execute(
        select(AccessRecord.chain_seq, AccessRecord.digest)
        .where(AccessRecord.chain_seq.is_not(None))
        .order_by(AccessRecord.chain_seq.desc())
        .limit(1)
    ).first()
    start = _start(session)
    if last is None or last[0] is None or last[1] is None or last[0] <= start[0]:
        return start
    return last[0], last[1]


def seal(session: Session, key: AuditKey, *, batch: int = _SEAL_BATCH) -> int:
    """Chain up to ``batch`` unsealed records (oldest id first) and checkpoint them; returns
    how many. Two sealers at once: one waits (PostgreSQL) or fails on the unique place and
    rolls back (SQLite) — nothing is chained twice."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    place, previous = chain_head(session)
    records = list(
        session.scalars(
            select(AccessRecord).where(AccessRecord.chain_seq.is_(None)).order_by(AccessRecord.id).limit(batch)
        )
    )
    for record in records:
        place += 1
        record.chain_seq = place
        record.digest = previous = key.digest(previous, record)
    if records:
        session.add(AuditSeal(kind="seal", chain_seq=place, digest=previous, records=len(records), key_id=key.key_id))
        session.flush()
        log.info("audit.sealed", chain_seq=place, digest=previous, records=len(records), key_id=key.key_id)
    return len(records)


def seal_all(sessions: sessionmaker[Session], key: AuditKey) -> int:
    """Seal until nothing is left unsealed, one transaction per batch; returns the total."""
    total = 0
    while True:
        with transaction(sessions) as session:
            sealed = seal(session, key)
        total += sealed
        if sealed < _SEAL_BATCH:
            return total


@dataclass(frozen=True)
class Problem:
    chain_seq: int | None
    record_id: int | None
    what: str

    def __str__(self) -> str:
        where = f"chain place {self.chain_seq}" if self.chain_seq is not None else "chain"
        if self.record_id is not None:
            where += f" (record {self.record_id})"
        return f"{where}: {self.what}"


@dataclass
class Verdict:
    checked: int = 0
    first: int | None = None
    last: int | None = None
    unsealed: int = 0
    oldest_unsealed: datetime | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(
    session: Session, key: AuditKey, *, progress: Callable[[int], None] | None = None, chunk: int = 5_000
) -> Verdict:
    """Walk the whole chain and report every alteration, gap, cut and foreign key."""
    verdict = Verdict()
    start, previous = _start(session)
    expected = start + 1
    other_keys = sorted(set(session.scalars(select(AuditSeal.key_id).where(AuditSeal.key_id != key.key_id).distinct())))
    if other_keys:
        verdict.problems.append(
            Problem(
                None,
                None,
                f"checkpoints were sealed with key(s) {', '.join(other_keys)}, not this one ({key.key_id}): "
                "set YUNYING_AUDIT_KEY (or YUNYING_SECRET_KEY) as it was when they were sealed",
            )
        )
    for record in _sealed_in_order(session, after=start, chunk=chunk):
        assert record.chain_seq is not None
        if verdict.first is None:
            verdict.first = record.chain_seq
        gap = record.chain_seq > expected
        if gap:
            verdict.problems.append(
                Problem(
                    expected,
                    None,
                    f"places {expected}–{record.chain_seq - 1} are missing: records were deleted"
                    if record.chain_seq - 1 > expected
                    else "missing: a record was deleted",
                )
            )
        # After a gap the previous digest is gone: the record cannot be checked, only its successors.
        if not gap and key.digest(previous, record) != record.digest:
            verdict.problems.append(
                Problem(record.chain_seq, record.id, "altered: its content no longer matches its seal")
            )
        previous = record.digest or ""
        expected = record.chain_seq + 1
        verdict.last = record.chain_seq
        verdict.checked += 1
        if progress is not None:
            progress(1)
    _check_checkpoints(session, verdict, start)
    unsealed = session.execute(
        select(func.count(), func.min(AccessRecord.at)).where(AccessRecord.chain_seq.is_(None))
    ).one()
    verdict.unsealed, verdict.oldest_unsealed = unsealed[0], unsealed[1]
    return verdict


def _sealed_in_order(session: Session, *, after: int, chunk: int) -> Iterator[AccessRecord]:
    """The sealed records past ``after`` in chain order, ``chunk`` at a time (keyset paging:
    memory stays flat over millions of records)."""
    place = after
    while True:
        page = list(
            session.scalars(
                select(AccessRecord).where(AccessRecord.chain_seq > place).order_by(AccessRecord.chain_seq).limit(chunk)
            )
        )
        if not page:
            return
        yield from page
        place = page[-1].chain_seq or place
        session.expunge_all()


def _check_checkpoints(session: Session, verdict: Verdict, start: int) -> None:
    """Every checkpoint past the start names a record that is still there with its digest."""
    broken = session.execute(
        select(AuditSeal.chain_seq, AuditSeal.at, AccessRecord.id, AccessRecord.digest, AuditSeal.digest)
        .outerjoin(AccessRecord, AccessRecord.chain_seq == AuditSeal.chain_seq)
        .where(
            AuditSeal.kind == "seal",
            AuditSeal.chain_seq > start,
            (AccessRecord.id.is_(None)) | (AccessRecord.digest != AuditSeal.digest),
        )
        .order_by(AuditSeal.chain_seq)
    ).all()
    last = verdict.last or start
    for place, at, record_id, _digest, _sealed in broken:
        if record_id is None and place > last:
            what = f"sealed on {at:%Y-%m-%d %H:%M} UTC but gone: records were cut off the end of the chain"
        elif record_id is None:
            continue  # a gap already reported by the walk
        else:
            what = "its digest differs from the checkpoint taken when it was sealed"
        verdict.problems.append(Problem(place, record_id, what))


def prune(session: Session, key: AuditKey, *, older_than: datetime) -> int:
    """Delete the sealed records older than ``older_than`` from the start of the chain (up to
    the first younger one, so the chain stays contiguous) and checkpoint where it now starts;
    returns how many. Unsealed records are never deleted."""
    start, _ = _start(session)
    first_young = session.scalar(
        select(func.min(AccessRecord.chain_seq)).where(AccessRecord.chain_seq > start, AccessRecord.at >= older_than)
    )
    upto = (
        first_young - 1
        if first_young is not None
        else session.scalar(select(func.max(AccessRecord.chain_seq)).where(AccessRecord.chain_seq > start))
    )
    if upto is None or upto <= start:
        return 0
    digest = session.scalar(select(AccessRecord.digest).where(AccessRecord.chain_seq == upto))
    if digest is None:
        raise ValueError(f"chain place {upto} is missing: run `yunying audit verify` before pruning")
    deleted = cast(
        CursorResult[Any],
        session.execute(
            delete(AccessRecord)
            .where(AccessRecord.chain_seq > start, AccessRecord.chain_seq <= upto)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    session.add(AuditSeal(kind="prune", chain_seq=upto, digest=digest, records=deleted, key_id=key.key_id))
    session.flush()
    log.info("audit.pruned", upto=upto, records=deleted, older_than=older_than.isoformat())
    return int(deleted)


@dataclass(frozen=True)
class Search:
    """What to look for; every field narrows. ``site_ids`` None: every site (and records of
    no site); otherwise only records of those sites."""

    patient_id: str | None = None
    study_uid: str | None = None
    username: str | None = None
    action: str | None = None
    outcome: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    site_ids: frozenset[int] | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.patient_id is not None:
            found.append(AccessRecord.patient_id == self.patient_id)
        if self.study_uid is not None:
            found.append(AccessRecord.study_uid == self.study_uid)
        if self.username is not None:
            found.append(AccessRecord.username == self.username)
        if self.action is not None:
            found.append(AccessRecord.action == self.action)
        if self.outcome is not None:
            found.append(AccessRecord.outcome == self.outcome)
        if self.start is not None:
            found.append(AccessRecord.at >= self.start)
        if self.end is not None:
            found.append(AccessRecord.at < self.end)
        if self.site_ids is not None:
            found.append(AccessRecord.site_id.in_(sorted(self.site_ids)))
        return found


def search(session: Session, query: Search, *, limit: int = 100, before_id: int | None = None) -> list[AccessRecord]:
    """Matching records, newest first; page with ``before_id`` (the last id of a page)."""
    conditions = query.conditions()
    if before_id is not None:
        conditions.append(AccessRecord.id < before_id)
    statement = select(AccessRecord).where(and_(True, *conditions)).order_by(AccessRecord.id.desc()).limit(limit)
    return list(session.scalars(statement))


def export_lines(session: Session, query: Search, *, chunk: int = 5_000) -> Iterator[str]:
    """Matching records oldest first as JSON lines, ``chunk`` rows per query."""
    conditions = query.conditions()
    after = 0
    while True:
        page = list(
            session.scalars(
                select(AccessRecord).where(AccessRecord.id > after, *conditions).order_by(AccessRecord.id).limit(chunk)
            )
        )
        if not page:
            return
        for record in page:
            yield json.dumps(record_json(record), ensure_ascii=False, sort_keys=True)
        after = page[-1].id
        session.expunge_all()


class AuditSealer(Periodic):
    """A background thread that seals new records every ``audit_seal_interval_s`` and, once a
    day, prunes what retention allows. Several may run (one per web or worker process)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        super().__init__("audit-sealer", settings.audit_seal_interval_s)
        self.sessions = sessions
        self.key = AuditKey.from_settings(settings)
        self.retention = timedelta(days=settings.audit_retention_days) if settings.audit_retention_days else None
        self._pruned_at: datetime | None = None

    def stop(self) -> None:
        super().stop()
        self.run_round()  # what the last requests recorded

    def round(self) -> None:
        try:
            seal_all(self.sessions, self.key)
        except IntegrityError:
            log.info("audit.seal_raced")  # another sealer took the same places; the next round goes on
            return
        now = utcnow()
        if self.retention is not None and (self._pruned_at is None or now - self._pruned_at > timedelta(days=1)):
            with transaction(self.sessions) as session:
                prune(session, self.key, older_than=now - self.retention)
            self._pruned_at = now


def describe(verdict: Verdict) -> Sequence[str]:
    """The verdict in lines a person reads (the CLI prints them)."""
    lines = [
        f"{verdict.checked} sealed record(s) checked"
        + (f", places {verdict.first}–{verdict.last}" if verdict.first is not None else "")
    ]
    if verdict.unsealed:
        oldest = verdict.oldest_unsealed
        lines.append(
            f"{verdict.unsealed} record(s) not sealed yet"
            + (f" (oldest {oldest:%Y-%m-%d %H:%M:%S} UTC)" if oldest else "")
            + ": the sealer runs in `yunying serve` and `yunying worker reading`; `yunying audit seal` seals now"
        )
    lines.extend(f"TAMPERED {problem}" for problem in verdict.problems)
    lines.append(
        "intact" if verdict.intact else f"{len(verdict.problems)} problem(s): the audit chain was tampered with"
    )
    return lines
