"""Reading tasks: created from a routing decision, claimed with a lease, released, escalated.
Every state change goes through ``transitions.transition``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.index.db import append_change
from pacs.index.models import Consortium, Instance, Series, Site, Study
from reading import events
from reading.errors import Conflict, Invalid, NotFound, OutOfScope
from reading.models import (
    PRIORITY_RANK,
    Priority,
    Reader,
    ReadingRequest,
    ReadingTask,
    ReadingTier,
    Report,
    ReportStatus,
    RoutingRule,
    SlaRule,
    TaskState,
)
from reading.worklist.readers import facts_of, readers_serving
from reading.worklist.routing import ReaderFacts, Route, RuleFacts, StudyFacts, main_modality, route
from reading.worklist.sla import SlaEntry, deadline, parse_priority, sla_minutes
from reading.worklist.transitions import HELD_STATES, OPEN_STATES, transition

log = structlog.get_logger(__name__)


def _locked(session: Session, statement: Any) -> Any:
    """``FOR UPDATE`` on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return statement


def order_priority(session: Session, study: Study) -> Priority | None:
    """PS3.3 C.4.11 Requested Procedure Priority (0040,1003) of the study's first instance, at
    the top level or in the Request Attributes Sequence (0040,0275), as a modality sends it."""
    header = session.scalar(
        select(Instance.header)
        .join(Series, Series.id == Instance.series_pk)
        .where(Series.study_pk == study.id, Instance.is_current.is_(True), Instance.header.is_not(None))
        .order_by(Instance.id)
        .limit(1)
    )
    if not header:
        return None
    values = header.get("00401003", {}).get("Value") or []
    for item in header.get("00400275", {}).get("Value") or []:
        values += (item.get("00401003") or {}).get("Value") or []
    found = [p for p in (parse_priority(str(v)) for v in values) if p is not None]
    return min(found, key=PRIORITY_RANK.__getitem__) if found else None


def _rules(session: Session, consortium_id: int) -> list[RuleFacts]:
    rows = session.scalars(
        select(RoutingRule)
        .where(RoutingRule.consortium_id == consortium_id, RoutingRule.active.is_(True))
        .order_by(RoutingRule.position, RoutingRule.id)
    )
    return [
        RuleFacts(
            r.id,
            r.name,
            r.site_id,
            r.site_tier,
            r.modality,
            r.body_part,
            r.to_tier,
            r.to_group_id,
            parse_priority(r.min_priority),
        )
        for r in rows
    ]


def sla_entries(session: Session, consortium_id: int) -> list[SlaEntry]:
    rows = session.scalars(select(SlaRule).where(SlaRule.consortium_id == consortium_id))
    return [SlaEntry(Priority(r.priority), r.modality, r.minutes) for r in rows]


def route_study(
    session: Session,
    study_uid: str,
    *,
    ai: dict[str, Any],
    ai_may_raise: bool,
    now: datetime,
    actor: str = "router",
    assign_lease: timedelta | None = None,
) -> ReadingTask | None:
    """Create the reading task of a study that is ready for reading, or — when the study has
    one already (AI came after the timeout, images came late) — update it. Returns the task.
    With ``assign_lease`` a new task is claimed at once for the on-duty reader who may read it
    and holds the fewest tasks (auto-assign)."""
    study = session.scalar(_locked(session, select(Study).where(Study.study_uid == study_uid)))
    if study is None:
        raise NotFound(f"study {study_uid} is not in the index")
    ai_priority = parse_priority(ai.get("priority"))
    flags = list(ai.get("flags") or [])
    existing = session.scalar(
        select(ReadingTask)
        .where(ReadingTask.study_pk == study.id, ReadingTask.state != TaskState.ESCALATED)
        .order_by(ReadingTask.id.desc())
        .limit(1)
    )
    if existing is not None:
        update_route(session, existing, flags, ai_priority if ai_may_raise else None, now=now, actor=actor)
        return existing
    site = session.get_one(Site, study.site_id)
    consortium = session.get_one(Consortium, site.consortium_id)
    request = session.scalar(
        select(ReadingRequest).where(ReadingRequest.study_uid == study_uid).order_by(ReadingRequest.id.desc()).limit(1)
    )
    facts = StudyFacts(
        study_uid=study_uid,
        consortium_id=consortium.id,
        site_id=site.id,
        site_name=site.name,
        site_tier=site.tier,
        modality=main_modality(study.modalities),
        body_part=study.body_part,
        ready_at=study.ready_at or now,
        order_priority=order_priority(session, study),
        ai_priority=ai_priority,
        ai_may_raise=ai_may_raise,
        requested_priority=parse_priority(request.priority) if request else None,
        second_opinion=bool(request and request.second_opinion),
    )
    readers = readers_serving(session, site.id, now=now)
    decision = route(
        facts,
        readers,
        _rules(session, consortium.id),
        sla_entries(session, consortium.id),
        timezone=consortium.timezone,
        now=now,
    )
    task = _create_task(session, study, site, decision, flags=flags, now=now, actor=actor)
    if assign_lease is not None:
        _auto_assign(session, task, readers, lease=assign_lease, now=now)
    return task


def _auto_assign(
    session: Session, task: ReadingTask, readers: list[ReaderFacts], *, lease: timedelta, now: datetime
) -> None:
    fit = [
        r.reader_id
        for r in readers
        if r.on_duty
        and r.tier == task.tier
        and r.credentialed(task.modality, task.body_part)
        and (task.group_id is None or task.group_id in r.group_ids)
    ]
    if not fit:
        return
    held: dict[int, int] = {
        int(reader_id or 0): int(count)
        for reader_id, count in session.execute(  # claimed_by is set: the IN filters NULL out
            select(ReadingTask.claimed_by, func.count())
            .where(ReadingTask.claimed_by.in_(fit), ReadingTask.state.in_([s.value for s in HELD_STATES]))
            .group_by(ReadingTask.claimed_by)
        )
    }
    chosen = min(fit, key=lambda reader_id: (held.get(reader_id, 0), reader_id))
    transition(
        session, task, TaskState.CLAIMED, actor="auto-assign", now=now, reader_id=chosen, open_tasks=held.get(chosen, 0)
    )
    _take(session, task, chosen, lease=lease, now=now)


def _create_task(
    session: Session,
    study: Study,
    site: Site,
    decision: Route,
    *,
    flags: list[dict[str, Any]],
    now: datetime,
    actor: str,
    escalated_from: ReadingTask | None = None,
    escalation_reason: str | None = None,
) -> ReadingTask:
    task = ReadingTask(
        study_pk=study.id,
        study_uid=study.study_uid,
        consortium_id=site.consortium_id,
        site_id=site.id,
        tier=decision.tier,
        group_id=decision.group_id,
        state=TaskState.QUEUED,
        priority=decision.priority,
        priority_rank=PRIORITY_RANK[decision.priority],
        deadline_at=decision.deadline_at,
        modality=main_modality(study.modalities),
        body_part=study.body_part,
        route_reason=decision.explanation,
        ai_flags=flags,
        escalated_from_id=escalated_from.id if escalated_from else None,
        escalation_reason=escalation_reason,
        images_seen_at=study.last_received_at,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    append_change(
        session,
        events.TASK_QUEUED,
        study_uid=study.study_uid,
        site_id=site.id,
        actor=actor,
        task_id=task.id,
        tier=task.tier,
        priority=task.priority,
        deadline_at=task.deadline_at.isoformat(),
        reason=decision.explanation,
        escalated_from=task.escalated_from_id,
    )
    log.info("task.queued", task_id=task.id, study_uid=study.study_uid, tier=task.tier, priority=task.priority)
    return task


def update_route(
    session: Session,
    task: ReadingTask,
    flags: list[dict[str, Any]],
    ai_priority: Priority | None,
    *,
    now: datetime,
    actor: str,
) -> None:
    changed: dict[str, Any] = {}
    if flags and flags != task.ai_flags:
        task.ai_flags = flags
        changed["ai_flags"] = len(flags)
    if ai_priority is not None and task.state in OPEN_STATES and PRIORITY_RANK[ai_priority] < task.priority_rank:
        minutes = sla_minutes(sla_entries(session, task.consortium_id), ai_priority, task.modality)
        task.priority, task.priority_rank = ai_priority, PRIORITY_RANK[ai_priority]
        task.deadline_at = min(task.deadline_at, deadline(task.created_at, minutes))
        changed["priority"] = ai_priority.value
    if changed:
        task.updated_at = now
        append_change(
            session,
            events.TASK_ROUTE_UPDATED,
            study_uid=task.study_uid,
            site_id=task.site_id,
            actor=actor,
            task_id=task.id,
            **changed,
        )


# ---------------------------------------------------------------- who may read what


def may_read(session: Session, reader: Reader, task: ReadingTask, *, now: datetime) -> str | None:
    """``None`` when ``reader`` may work on ``task``, else why not (for the 403)."""
    facts = facts_of(session, reader, now=now)
    if task.tier != reader.tier:
        return f"task {task.id} is for the {task.tier} tier; you read at the {reader.tier} tier"
    if not facts.serves(task.site_id):
        return f"you do not read for the site of task {task.id}"
    if not facts.credentialed(task.modality, task.body_part):
        what = " ".join(p for p in (task.modality, task.body_part) if p)
        return f"you are not credentialed for {what or 'this study'}"
    if task.group_id is not None and task.group_id not in facts.group_ids:
        return f"task {task.id} is for reading group {task.group_id}"
    return None


def get_task(session: Session, task_id: int, *, lock: bool = False) -> ReadingTask:
    statement = select(ReadingTask).where(ReadingTask.id == task_id)
    task = session.scalar(_locked(session, statement) if lock else statement)
    if task is None:
        raise NotFound(f"no reading task {task_id}")
    return task


def _check_scope(session: Session, reader: Reader, task: ReadingTask, now: datetime) -> None:
    why = may_read(session, reader, task, now=now)
    if why is not None:
        raise OutOfScope(why)


def _check_holder(task: ReadingTask, reader: Reader, now: datetime) -> None:
    if task.state not in HELD_STATES or task.claimed_by != reader.id:
        raise Conflict(f"task {task.id} is {task.state}, not claimed by you: claim it first")
    if task.lease_expires_at is not None and task.lease_expires_at <= now:
        raise Conflict(f"your claim on task {task.id} expired at {task.lease_expires_at:%H:%M:%S} UTC: claim it again")


# ---------------------------------------------------------------- claims


def _take(session: Session, task: ReadingTask, reader_id: int, *, lease: timedelta, now: datetime) -> None:
    """Hold the task for ``reader_id``; he sees every image received so far, so only later ones
    flag it as ``new_images``."""
    task.claimed_by, task.claimed_at, task.lease_expires_at = reader_id, now, now + lease
    last = session.scalar(select(Study.last_received_at).where(Study.id == task.study_pk))
    if last is not None and last > task.images_seen_at:
        task.images_seen_at = last


def claim(session: Session, reader: Reader, task_id: int, *, lease: timedelta, now: datetime) -> ReadingTask:
    """Claim a queued task for ``lease``; claiming one's own claim again renews it. Under
    concurrency exactly one claimer wins: the row is locked (PostgreSQL ``FOR UPDATE``; SQLite
    takes the write lock at ``BEGIN IMMEDIATE``) and the state checked under the lock."""
    task = get_task(session, task_id, lock=True)
    _check_scope(session, reader, task, now)
    if task.state in HELD_STATES and task.claimed_by == reader.id:
        task.lease_expires_at = now + lease
        return task
    if task.state != TaskState.QUEUED:
        holder = f" by reader {task.claimed_by}" if task.claimed_by else ""
        raise Conflict(f"task {task.id} is already {task.state}{holder}")
    transition(session, task, TaskState.CLAIMED, actor=f"reader:{reader.id}", now=now, reader_id=reader.id)
    _take(session, task, reader.id, lease=lease, now=now)
    return task


def claim_next(session: Session, reader: Reader, *, lease: timedelta, now: datetime) -> ReadingTask | None:
    """Claim the first queued task of the reader's worklist (stat first, nearest deadline)."""
    from reading.worklist.queries import Filters, worklist_statement

    statement = worklist_statement(session, reader, Filters(states=(TaskState.QUEUED,)), now=now).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=ReadingTask)
    task: ReadingTask | None = session.scalar(statement)
    if task is None:
        return None
    transition(session, task, TaskState.CLAIMED, actor=f"reader:{reader.id}", now=now, reader_id=reader.id)
    _take(session, task, reader.id, lease=lease, now=now)
    return task


def renew(session: Session, reader: Reader, task_id: int, *, lease: timedelta, now: datetime) -> ReadingTask:
    task = get_task(session, task_id, lock=True)
    _check_holder(task, reader, now)
    task.lease_expires_at = now + lease
    return task


def release(session: Session, reader: Reader, task_id: int, *, now: datetime) -> ReadingTask:
    task = get_task(session, task_id, lock=True)
    if task.state not in HELD_STATES or task.claimed_by != reader.id:
        raise Conflict(f"task {task.id} is {task.state}, not claimed by you: nothing to release")
    transition(session, task, TaskState.QUEUED, actor=f"reader:{reader.id}", now=now, event=events.TASK_RELEASED)
    return task


# ---------------------------------------------------------------- escalation


def escalate(session: Session, task: ReadingTask, *, reason: str, actor: str, now: datetime) -> ReadingTask:
    """End a county task as ``escalated`` and queue a provincial task that carries the reason
    (and, through ``escalated_from``, the county's preliminary report)."""
    if not reason.strip():
        raise Invalid("an escalation needs a reason the provincial expert will read")
    if task.tier != ReadingTier.COUNTY:
        raise Conflict(f"task {task.id} is already at the {task.tier} tier: there is no tier above it")
    for report in session.scalars(select(Report).where(Report.task_id == task.id, Report.status == ReportStatus.DRAFT)):
        report.status = ReportStatus.PRELIMINARY  # the county's opinion travels up as a preliminary
        report.updated_at = now
    transition(session, task, TaskState.ESCALATED, actor=actor, now=now, reason=reason)
    study = session.get_one(Study, task.study_pk)
    site = session.get_one(Site, task.site_id)
    minutes = sla_minutes(sla_entries(session, task.consortium_id), Priority(task.priority), task.modality)
    decision = Route(
        tier=ReadingTier.PROVINCIAL,
        group_id=None,
        priority=Priority(task.priority),
        deadline_at=deadline(now, minutes),
        explanation=f"escalated from county task {task.id}: {reason}",
    )
    return _create_task(
        session,
        study,
        site,
        decision,
        flags=list(task.ai_flags),
        now=now,
        actor=actor,
        escalated_from=task,
        escalation_reason=reason,
    )


def escalate_by_reader(session: Session, reader: Reader, task_id: int, *, reason: str, now: datetime) -> ReadingTask:
    task = get_task(session, task_id, lock=True)
    _check_holder(task, reader, now)
    return escalate(session, task, reason=reason, actor=f"reader:{reader.id}", now=now)
