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

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from pacs.index.models import Change, Site
from reading.models import ReadingTask
from reading.qa.models import QaCursor, QaTurnaround
from reading.qa.timeline import Event, Milestones, milestones

_BATCH = 500  # studies rebuilt per round trip


def refresh(session: Session) -> int:
    """Fold the changes after the cursor into ``qa_turnaround``; returns the studies rebuilt.
    Concurrent refreshes are harmless (each rebuilds whole studies and moves the cursor up)."""
    cursor = session.get(QaCursor, 1)
    last = cursor.last_seq if cursor else 0
    newest = session.scalar(select(func.max(Change.seq))) or 0
    if newest <= last:
        return 0
    touched = session.scalars(
        select(Change.study_uid)
        .where(Change.seq > last, Change.seq <= newest, Change.study_uid.is_not(None))
        .distinct()
    )
    studies = {uid for uid in touched if uid is not None}
    _rebuild(session, studies, upto=newest)
    if cursor is None:
        session.add(QaCursor(id=1, last_seq=newest))
    else:
        cursor.last_seq = max(cursor.last_seq, newest)
    return len(studies)


def recompute(session: Session) -> int:
    """Drop every derived row and rebuild from the whole log; returns the rows written."""
    session.execute(delete(QaTurnaround))
    session.execute(delete(QaCursor))
    newest = session.scalar(select(func.max(Change.seq))) or 0
    studies = set(session.scalars(select(ReadingTask.study_uid).distinct()))
    _rebuild(session, studies, upto=newest)
    session.add(QaCursor(id=1, last_seq=newest))
    session.flush()
    return session.scalar(select(func.count()).select_from(QaTurnaround)) or 0


def _rebuild(session: Session, studies: Iterable[str], *, upto: int) -> None:
    ordered = sorted(studies)
    for start in range(0, len(ordered), _BATCH):
        batch = ordered[start : start + _BATCH]
        logs: dict[str, list[Event]] = defaultdict(list)
        rows = session.execute(
            select(Change.seq, Change.kind, Change.at, Change.actor, Change.payload, Change.study_uid)
            .where(Change.study_uid.in_(batch), Change.seq <= upto)
            .order_by(Change.seq)
        )
        for seq, kind, at, actor, payload, study_uid in rows:
            logs[study_uid].append(Event(seq, kind, at, actor, payload or {}))
        found = [m for uid in batch for m in milestones(uid, logs.get(uid, []))]
        session.execute(delete(QaTurnaround).where(QaTurnaround.study_uid.in_(batch)))
        if found:
            _insert(session, found)


def _insert(session: Session, found: list[Milestones]) -> None:
    """One multi-row INSERT per batch, the task's dimensions read as plain columns (no ORM
    objects: ``bench/qa.py`` recomputes 100,000 tasks)."""
    tasks = {
        row.id: row
        for row in session.execute(
            select(
                ReadingTask.id,
                ReadingTask.consortium_id,
                ReadingTask.site_id,
                ReadingTask.tier,
                ReadingTask.priority,
                ReadingTask.modality,
                ReadingTask.body_part,
                ReadingTask.deadline_at,
                Site.tier.label("site_tier"),
            )
            .join(Site, Site.id == ReadingTask.site_id)
            .where(ReadingTask.id.in_([m.task_id for m in found]))
        )
    }
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
    if rows:
        session.execute(insert(QaTurnaround), rows)
