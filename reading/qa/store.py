"""Keeping ``qa_turnaround`` in step with the change log.

``refresh`` folds in what happened since the cursor: the studies with new changes get their
rows rebuilt from all their events (a study's events are few; rebuilding them whole keeps one
code path). ``recompute`` drops every row and rebuilds from the whole log: the same table, as
the test checks. Both take the task's dimensions (site, tier, priority, modality, body part,
deadline) from the task and site rows — attributes, not figures; every time comes from the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Select, delete, func, insert, select
from sqlalchemy.orm import Session

from pacs.index.models import Change, Site
from reading.models import ReadingTask
from reading.qa.models import QaCursor, QaTurnaround
from reading.qa.timeline import Event, Milestones, milestones

_BATCH = 500  # studies rebuilt per round trip
# pg_advisory_xact_lock's key for refresh (any constant of our own: "QA" in ASCII).
_REFRESH_LOCK = 0x5141


def refresh(session: Session) -> int:
    """Fold the changes after the cursor into ``qa_turnaround``; returns the studies rebuilt.
    Concurrent refreshes wait for each other: the later one finds the cursor moved."""
    if session.get_bind().dialect.name == "postgresql":
        # Under READ COMMITTED two refreshes both deleted a study's rows and both inserted them:
        # the second's insert broke qa_turnaround's key (the QA page asks for four figures at
        # once). One at a time, until the first commits; SQLite's BEGIN IMMEDIATE already
        # serialises writers.
        session.execute(select(func.pg_advisory_xact_lock(_REFRESH_LOCK)))
    cursor = session.get(QaCursor, 1)
    last = cursor.last_seq if cursor else 0
    newest = session.scalar(select(func.max(Change.seq))) or 0
    if newest <= last:
        return 0
    if cursor is None:  # nothing folded in yet: the whole log, as recompute reads it
        session.execute(delete(QaTurnaround))
        rebuilt = _rebuild_all(session, upto=newest)
        session.add(QaCursor(id=1, last_seq=newest))
        return rebuilt
    touched = session.scalars(
        select(Change.study_uid)
        .where(Change.seq > last, Change.seq <= newest, Change.study_uid.is_not(None))
        .distinct()
    )
    studies = {uid for uid in touched if uid is not None}
    _rebuild(session, studies, upto=newest)
    cursor.last_seq = max(cursor.last_seq, newest)
    return len(studies)


def recompute(session: Session) -> int:
    """Drop every derived row and rebuild from the whole log; returns the rows written."""
    session.execute(delete(QaTurnaround))
    session.execute(delete(QaCursor))
    newest = session.scalar(select(func.max(Change.seq))) or 0
    _rebuild_all(session, upto=newest)
    session.add(QaCursor(id=1, last_seq=newest))
    session.flush()
    return session.scalar(select(func.count()).select_from(QaTurnaround)) or 0


def _rebuild(session: Session, studies: Iterable[str], *, upto: int) -> None:
    """The rows of ``studies`` (few: a refresh's), a batch of studies per round trip."""
    ordered = sorted(studies)
    for start in range(0, len(ordered), _BATCH):
        batch = ordered[start : start + _BATCH]
        logs: dict[str, list[Event]] = defaultdict(list)
        rows = session.connection().execute(
            _events().where(Change.study_uid.in_(batch), Change.seq <= upto).order_by(Change.seq)
        )
        for row in rows:
            logs[row.study_uid].append(_event(row))
        found = [m for uid in batch for m in milestones(uid, logs.get(uid, []))]
        session.execute(delete(QaTurnaround).where(QaTurnaround.study_uid.in_(batch)))
        if found:
            _insert(session, found)


def _rebuild_all(session: Session, *, upto: int) -> int:
    """Every study's rows from one pass over the log in (study, seq) order, streamed; returns
    the studies seen. A province's 1,000,000 events in batches of 500 studies took 38 s, most
    of it in the database matching 500 UIDs per query and the driver parsing those queries."""
    tasks = {row.id: row for row in session.connection().execute(_TASK)}
    found: list[Milestones] = []
    study_uid: str | None = None
    log: list[Event] = []
    studies = 0
    statement = (
        _events()
        .where(Change.study_uid.is_not(None), Change.seq <= upto)
        .order_by(Change.study_uid, Change.seq)
        .execution_options(yield_per=10_000)
    )
    for row in session.connection().execute(statement):
        if row.study_uid != study_uid:
            if study_uid is not None:
                found += milestones(study_uid, log)
            study_uid, log = row.study_uid, []
            studies += 1
            if len(found) >= 1000:
                _insert(session, found, tasks)
                found = []
        log.append(_event(row))
    if study_uid is not None:
        found += milestones(study_uid, log)
    if found:
        _insert(session, found, tasks)
    return studies


def _events() -> Select[Any]:
    """A change as the timeline reads it. Only the payload keys it reads, extracted by the
    database: decoding every payload as JSON took 8.5 s of a profiled 1,000,000-event recompute."""
    return select(
        Change.seq,
        Change.kind,
        Change.at,
        Change.actor,
        Change.study_uid,
        Change.payload["task_id"].as_integer().label("task_id"),
        Change.payload["tier"].as_string().label("tier"),
        Change.payload["report_id"].as_integer().label("report_id"),
    )


def _event(row: Any) -> Event:
    payload = {
        key: value
        for key, value in (("task_id", row.task_id), ("tier", row.tier), ("report_id", row.report_id))
        if value is not None
    }
    return Event(row.seq, row.kind, row.at, row.actor, payload)


# A task's attributes the derived row copies (its dimensions and deadline).
_TASK = select(
    ReadingTask.id,
    ReadingTask.consortium_id,
    ReadingTask.site_id,
    ReadingTask.tier,
    ReadingTask.priority,
    ReadingTask.modality,
    ReadingTask.body_part,
    ReadingTask.deadline_at,
    Site.tier.label("site_tier"),
).join(Site, Site.id == ReadingTask.site_id)


def _insert(session: Session, found: list[Milestones], tasks: dict[int, Any] | None = None) -> None:
    """The rows of ``found``, with the task attributes read as plain columns (``tasks``: all
    of them already, for a recompute) — no ORM objects: ``bench/qa.py`` writes 100,000."""
    if tasks is None:
        query = _TASK.where(ReadingTask.id.in_([m.task_id for m in found]))
        tasks = {row.id: row for row in session.connection().execute(query)}
    rows = []
    for m in found:
        task = tasks.get(m.task_id)
        if task is None:  # a task row deleted with its study: nothing to report on
            continue
        rows.append(
            {
                "task_id": m.task_id,
                "study_uid": m.study_uid,
                "consortium_id": task.consortium_id,
                "site_id": task.site_id,
                "site_tier": task.site_tier,
                "tier": task.tier,
                "priority": task.priority,
                "modality": task.modality,
                "body_part": task.body_part,
                "reader_id": m.reader_id,
                "escalated": m.escalated,
                "received_at": m.received_at,
                "stable_at": m.stable_at,
                "ai_at": m.ai_at,
                "queued_at": m.queued_at,
                "claimed_at": m.claimed_at,
                "preliminary_at": m.preliminary_at,
                "signed_at": m.signed_at,
                "delivered_at": m.delivered_at,
                "deadline_at": task.deadline_at,
                "arrived_at": m.received_at or m.queued_at,
            }
        )
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _copy(connection, rows)
        return
    # With RETURNING, SQLAlchemy sends the rows as multi-row VALUES pages ("insertmanyvalues")
    # from one compiled statement; without it, executemany is one INSERT per row.
    connection.execute(insert(QaTurnaround).returning(QaTurnaround.task_id), rows).all()


def _copy(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """COPY on PostgreSQL: executemany sent one INSERT per row (24 s for 100,000 tasks under
    the profiler) and multi-row VALUES made psycopg parse 21,000 placeholders per statement
    (~50 ms each)."""
    columns = list(rows[0])
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY qa_turnaround ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])
