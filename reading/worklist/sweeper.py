"""The reading sweeper: the timed duties of the workflow, run by one background thread per
process (several processes may run it; each duty takes its rows under a lock).

- AI timeout: a stable study with no AI result within the limit goes on to reading anyway.
- Routing: ``reading.route`` jobs become reading tasks.
- Leases: a claim whose lease ran out goes back to the queue.
- SLA: a queued task past its deadline raises ``task.sla_breached`` and (by setting) escalates.
- Late images: images after a claim or a signature flag the task (and ask for an addendum).
- Critical results the site did not acknowledge in time go to the centre's duty officer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from pacs import events as pacs_events
from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.index.models import JobState, Study, StudyState
from pacs.index.types import utcnow
from pacs.jobs import next_due, record_failure
from pacs.periodic import Periodic
from pacs.readiness import mark_ready_for_reading
from reading import events
from reading.errors import ReadingError
from reading.models import CriticalResult, CriticalState, ReadingTask, ReadingTier, Report, TaskState
from reading.notify import CriticalNotice, CriticalNotifier, PortalNotifier, load_notifiers
from reading.settings import ReadingSettings
from reading.worklist.readers import readers_serving
from reading.worklist.tasks import escalate, route_study
from reading.worklist.transitions import HELD_STATES, transition

log = structlog.get_logger(__name__)
BATCH = 100


def hand_over_late_ai(sessions: sessionmaker[Session], timeout: timedelta, *, now: datetime) -> list[str]:
    """Studies stable for ``timeout`` with no AI hand-off go to reading without AI."""
    with transaction(sessions) as session:
        uids = session.scalars(
            select(Study.study_uid)
            .where(Study.state == StudyState.STABLE, Study.ready_at.is_(None), Study.stable_at <= now - timeout)
            .order_by(Study.stable_at)
            .limit(BATCH)
        ).all()
        handed = [
            uid
            for uid in uids
            if mark_ready_for_reading(
                session,
                uid,
                reason=f"no AI result within {timeout.total_seconds():g} s",
                actor="reading-sweeper",
                now=now,
            )
        ]
    return handed


def route_pending(
    sessions: sessionmaker[Session], *, demo: bool, now: datetime, assign_lease: timedelta | None = None
) -> int:
    """Turn due ``reading.route`` jobs into tasks, each job in its own transaction
    (``assign_lease``: auto-assign each new task, see ``route_study``)."""
    routed = 0
    for _ in range(BATCH):
        job_id: int | None = None
        try:
            with transaction(sessions) as session:
                job = next_due(session, pacs_events.JOB_ROUTE_STUDY, now=now)
                if job is None:
                    break
                job_id = job.id
                ai = dict(job.payload.get("ai") or {})
                # Only a clinically validated model may reorder a real queue (issue C); in demo
                # mode a phantom-trained one may.
                may_raise = bool(ai.get("validated")) or demo
                route_study(
                    session,
                    job.payload["study_uid"],
                    ai=ai,
                    ai_may_raise=may_raise,
                    now=now,
                    assign_lease=assign_lease,
                )
                job.state, job.updated_at, job.attempts = JobState.DONE, now, job.attempts + 1
            routed += 1
        except IndexUnavailable:
            raise
        except Exception as exc:  # a bad job must not block the ones behind it
            if job_id is None:
                raise
            log.exception("routing.failed", job_id=job_id)
            record_failure(sessions, job_id, f"{type(exc).__name__}: {exc}", now=now)
    return routed


def expire_leases(sessions: sessionmaker[Session], *, now: datetime) -> int:
    with transaction(sessions) as session:
        tasks = session.scalars(
            select(ReadingTask)
            .where(ReadingTask.state.in_([s.value for s in HELD_STATES]), ReadingTask.lease_expires_at <= now)
            .limit(BATCH)
        ).all()
        for task in tasks:
            transition(
                session,
                task,
                TaskState.QUEUED,
                actor="reading-sweeper",
                now=now,
                event=events.TASK_LEASE_EXPIRED,
                reader_id=task.claimed_by,
            )
    return len(tasks)


def flag_breaches(sessions: sessionmaker[Session], *, auto_escalate: bool, now: datetime) -> int:
    """``task.sla_breached`` once per task that is still unsigned past its deadline, saying
    which interval ran long; a county task still queued then escalates (by setting)."""
    with transaction(sessions) as session:
        tasks = session.scalars(
            select(ReadingTask)
            .where(
                ReadingTask.state.in_([TaskState.QUEUED, TaskState.CLAIMED, TaskState.PRELIMINARY]),
                ReadingTask.deadline_at <= now,
                ReadingTask.breached_at.is_(None),
            )
            .limit(BATCH)
        ).all()
        for task in tasks:
            task.breached_at = now
            waited = int((now - task.created_at).total_seconds() // 60)
            interval = f"{task.state} {waited} min" if task.state == TaskState.QUEUED else f"{task.state}, not signed"
            append_change(
                session,
                events.TASK_SLA_BREACHED,
                study_uid=task.study_uid,
                site_id=task.site_id,
                actor="reading-sweeper",
                task_id=task.id,
                tier=task.tier,
                priority=task.priority,
                state=task.state,
                interval=interval,
                deadline_at=task.deadline_at.isoformat(),
            )
            if (
                auto_escalate
                and task.state == TaskState.QUEUED
                and task.tier == ReadingTier.COUNTY
                and _provincial_serves(session, task, now)
            ):
                escalate(
                    session,
                    task,
                    reason=f"SLA breached: queued {waited} min without a county reader",
                    actor="reading-sweeper",
                    now=now,
                )
    return len(tasks)


def _provincial_serves(session: Session, task: ReadingTask, now: datetime) -> bool:
    """Whether any provincial reader may read the task (else escalating would hide it)."""
    return any(
        r.tier == ReadingTier.PROVINCIAL and r.credentialed(task.modality, task.body_part)
        for r in readers_serving(session, task.site_id, now=now)
    )


def flag_late_images(sessions: sessionmaker[Session], *, now: datetime) -> int:
    """A task being read or signed whose study received images since it was routed is flagged;
    once signed, the flag asks for an addendum."""
    watched = [TaskState.CLAIMED, TaskState.PRELIMINARY, TaskState.SIGNED, TaskState.AMENDED]
    with transaction(sessions) as session:
        rows = session.execute(
            select(ReadingTask, Study.last_received_at)
            .join(Study, Study.id == ReadingTask.study_pk)
            .where(
                ReadingTask.state.in_([s.value for s in watched]), Study.last_received_at > ReadingTask.images_seen_at
            )
            .limit(BATCH)
        ).all()
        for task, last_received in rows:
            task.new_images, task.images_seen_at, task.updated_at = True, last_received, now
            signed = task.state in {TaskState.SIGNED, TaskState.AMENDED}
            append_change(
                session,
                events.TASK_NEW_IMAGES,
                study_uid=task.study_uid,
                site_id=task.site_id,
                actor="reading-sweeper",
                task_id=task.id,
                state=task.state,
                addendum_requested=signed,
            )
    return len(rows)


def escalate_unacknowledged(sessions: sessionmaker[Session], *, now: datetime) -> int:
    """Critical results past their acknowledgement deadline alert the centre's duty officer."""
    with transaction(sessions) as session:
        overdue = session.scalars(
            select(CriticalResult)
            .where(CriticalResult.state == CriticalState.OPEN, CriticalResult.ack_due_at <= now)
            .limit(BATCH)
        ).all()
        for critical in overdue:
            critical.state, critical.escalated_at = CriticalState.ESCALATED, now
            append_change(
                session,
                events.CRITICAL_ESCALATED,
                study_uid=critical.study_uid,
                site_id=critical.site_id,
                actor="reading-sweeper",
                critical_id=critical.id,
                report_id=critical.report_id,
            )
    return len(overdue)


def notify_critical(sessions: sessionmaker[Session], notifiers: list[CriticalNotifier], *, now: datetime) -> int:
    """Tell the notifiers of each critical result raised or escalated since the last pass, then
    stamp it (a notifier that fails is retried on the next pass; the others may hear twice)."""
    with transaction(sessions, read_only=True) as session:
        pending = session.execute(
            select(CriticalResult, Report.impression)
            .join(Report, Report.id == CriticalResult.report_id)
            .where(
                or_(
                    CriticalResult.notified_at.is_(None),
                    and_(CriticalResult.escalated_at.is_not(None), CriticalResult.escalation_notified_at.is_(None)),
                )
            )
            .limit(BATCH)
        ).all()
    for critical, impression in pending:
        step = "raised" if critical.notified_at is None else "escalated"
        notice = CriticalNotice(
            step, critical.id, critical.report_id, critical.study_uid, critical.site_id, impression, critical.ack_due_at
        )
        for notifier in notifiers:
            notifier.notify(notice)
        with transaction(sessions) as session:
            row = session.get_one(CriticalResult, critical.id)
            if step == "raised":
                row.notified_at = now
            else:
                row.escalation_notified_at = now
    return len(pending)


def sweep_once(
    sessions: sessionmaker[Session],
    settings: ReadingSettings,
    *,
    demo: bool,
    now: datetime | None = None,
    notifiers: list[CriticalNotifier] | None = None,
) -> None:
    now = now or utcnow()
    hand_over_late_ai(sessions, timedelta(seconds=settings.reading_ai_timeout_s), now=now)
    lease = timedelta(seconds=settings.reading_lease_s) if settings.reading_auto_assign else None
    route_pending(sessions, demo=demo, now=now, assign_lease=lease)
    expire_leases(sessions, now=now)
    flag_breaches(sessions, auto_escalate=settings.reading_auto_escalate, now=now)
    flag_late_images(sessions, now=now)
    escalate_unacknowledged(sessions, now=now)
    notify_critical(sessions, notifiers if notifiers is not None else [PortalNotifier(sessions)], now=now)


class ReadingSweeper(Periodic):
    """A background thread running ``sweep_once`` every ``reading_sweep_poll_s`` seconds."""

    expected = (*Periodic.expected, ReadingError)

    def __init__(self, sessions: sessionmaker[Session], settings: ReadingSettings, *, demo: bool) -> None:
        super().__init__("reading-sweeper", settings.reading_sweep_poll_s)
        self.sessions = sessions
        self.settings = settings
        self.demo = demo
        # Built at start-up so a mistyped adapter path stops the service with the fix.
        self.notifiers = load_notifiers(settings.critical_notifiers, sessions)

    def round(self) -> None:
        sweep_once(self.sessions, self.settings, demo=self.demo, notifiers=self.notifiers)
