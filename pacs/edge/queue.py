"""The edge's durable forward queue: one ``job`` row per instance to send to the centre, one per
study whose manifest the centre must confirm. Rows in the edge's own SQLite index (pacs/jobs.py
takes them with a lease), so a crash or a power cut loses none.

States a clinic sees (``study_progress``): *queued* (nothing sent yet), *sending n of m* (n
instances acknowledged by the centre), *acknowledged* (every instance acknowledged and the
centre confirmed the manifest: the study is complete there), *failed* (an instance or the
manifest was refused for good, with the centre's reason; the data stays here).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.index.models import Job, JobState, Study

FORWARD: Final = "edge.forward"  # payload: study_uid, sop_instance_uid
MANIFEST: Final = "edge.manifest"  # payload: study_uid; queued when the study is stable at the edge
# A link outage is not a reason to give up: only a refusal by the centre fails a job for good.
UNLIMITED_ATTEMPTS: Final = 1_000_000

# The edge's index is SQLite only (the embedded shape), so its job payloads are searched with
# SQLite's json_extract; the edge's queue is small (a clinic's few days of studies).
STUDY_OF = func.json_extract(Job.payload, "$.study_uid")
_SOP_OF = func.json_extract(Job.payload, "$.sop_instance_uid")


def retry_delay(attempt: int, *, initial_s: float, max_s: float, jitter: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``initial_s`` doubled per attempt, capped at ``max_s``,
    then spread by ± ``jitter`` so that many edges behind one county link do not retry in step."""
    base = min(max_s, initial_s * 2 ** max(attempt - 1, 0))
    return float(max(0.0, base * (1 + rng.uniform(-jitter, jitter))))


def enqueue_forward(session: Session, study_uid: str, sop_instance_uid: str, *, now: datetime) -> bool:
    """Queue ``sop_instance_uid`` for the centre unless a forward of it is already queued or done;
    True when a job was added. A re-sent instance the centre already acknowledged is not sent again."""
    existing = session.scalar(
        select(Job.id).where(Job.kind == FORWARD, _SOP_OF == sop_instance_uid, Job.state != JobState.FAILED).limit(1)
    )
    if existing is not None:
        return False
    session.add(
        Job(
            kind=FORWARD,
            payload={"study_uid": study_uid, "sop_instance_uid": sop_instance_uid},
            max_attempts=UNLIMITED_ATTEMPTS,
            next_run_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return True


def enqueue_manifest(session: Session, study_uid: str, *, now: datetime) -> None:
    """Queue (again) the manifest of ``study_uid``: after the study turned stable at the edge,
    including when a late instance re-opened it."""
    pending = session.scalar(
        select(Job).where(
            Job.kind == MANIFEST, STUDY_OF == study_uid, Job.state.in_([JobState.PENDING, JobState.RUNNING])
        )
    )
    if pending is not None:
        pending.next_run_at = now
        return
    session.add(
        Job(
            kind=MANIFEST,
            payload={"study_uid": study_uid},
            max_attempts=UNLIMITED_ATTEMPTS,
            next_run_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def requeue(session: Session, sop_instance_uids: list[str], *, now: datetime) -> int:
    """Send these instances again (the centre's manifest check says it lacks them)."""
    count = 0
    for job in session.scalars(select(Job).where(Job.kind == FORWARD, _SOP_OF.in_(sop_instance_uids))):
        if job.state == JobState.DONE:
            job.state = JobState.PENDING
            job.next_run_at = now
            job.updated_at = now
            count += 1
    return count


def retry_failed(session: Session, *, now: datetime, study_uid: str | None = None) -> int:
    """Put failed jobs back in the queue (after the cause was fixed at the centre)."""
    statement = select(Job).where(Job.kind.in_([FORWARD, MANIFEST]), Job.state == JobState.FAILED)
    if study_uid is not None:
        statement = statement.where(STUDY_OF == study_uid)
    count = 0
    for job in session.scalars(statement):
        job.state = JobState.PENDING
        job.attempts = 0
        job.next_run_at = now
        job.updated_at = now
        count += 1
    return count


@dataclass
class StudyProgress:
    study_uid: str
    patient_id: str | None
    patient_name: str | None
    study_date: str | None
    modalities: str
    instances: int  # held here
    queued: int = 0
    sending: int = 0
    acknowledged: int = 0
    failed: int = 0
    manifest: str = "waiting"  # waiting (study not yet stable here) | pending | confirmed | failed
    errors: list[str] = field(default_factory=list)
    next_attempt_at: datetime | None = None
    last_change_at: datetime | None = None

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.acknowledged + self.failed

    @property
    def state(self) -> str:
        if self.failed or self.manifest == "failed":
            return "failed"
        if self.manifest == "confirmed" and self.acknowledged == self.total:
            return "acknowledged"
        if self.acknowledged or self.sending:
            return "sending"
        return "queued"

    def describe(self) -> str:
        if self.state == "failed":
            return f"failed: {self.errors[0] if self.errors else 'see `yunying edge status --json`'}"
        if self.state == "acknowledged":
            return f"acknowledged ({self.total} instances complete at the centre)"
        if self.state == "sending":
            waiting = " (waiting for the manifest check)" if self.acknowledged == self.total else ""
            return f"sending {self.acknowledged} of {self.total}{waiting}"
        return f"queued ({self.total} instances)"


def study_progress(session: Session, *, limit: int = 200) -> list[StudyProgress]:
    """Where each study held at the edge stands, newest first."""
    studies = session.scalars(select(Study).order_by(Study.last_received_at.desc()).limit(limit)).all()
    progress = {
        s.study_uid: StudyProgress(
            s.study_uid, s.patient_id, s.patient_name, s.study_date, s.modalities, s.num_instances
        )
        for s in studies
    }
    if not progress:
        return []
    jobs = session.execute(
        select(Job.kind, Job.state, Job.attempts, Job.last_error, Job.next_run_at, Job.updated_at, STUDY_OF)
        .where(Job.kind.in_([FORWARD, MANIFEST]), STUDY_OF.in_(list(progress)))
        .order_by(Job.id)  # a study re-opened at the edge has a newer manifest job: the last one counts
    ).all()
    for kind, state, attempts, last_error, next_run_at, updated_at, study_uid in jobs:
        row = progress[study_uid]
        row.last_change_at = max(filter(None, [row.last_change_at, updated_at]), default=None)
        if kind == MANIFEST:
            row.manifest = {
                JobState.DONE: "confirmed",
                JobState.FAILED: "failed",
            }.get(state, "pending")
            if state == JobState.FAILED and last_error:
                row.errors.append(f"manifest: {last_error}")
            continue
        if state == JobState.DONE:
            row.acknowledged += 1
        elif state == JobState.FAILED:
            row.failed += 1
            if last_error and last_error not in row.errors:
                row.errors.append(last_error)
        elif state == JobState.RUNNING or attempts:
            row.sending += 1
            if state == JobState.PENDING and next_run_at is not None:
                row.next_attempt_at = min(filter(None, [row.next_attempt_at, next_run_at]))
            if last_error and state == JobState.PENDING and not row.errors:
                row.errors.append(f"retrying: {last_error}")
        else:
            row.queued += 1
    return list(progress.values())


def acknowledged_before(session: Session, cutoff: datetime) -> list[str]:
    """Studies whose manifest the centre confirmed before ``cutoff`` and that have nothing left to
    send: the only ones pruning may delete."""
    confirmed = session.execute(
        select(STUDY_OF, func.max(Job.updated_at))
        .where(Job.kind == MANIFEST)
        .group_by(STUDY_OF)
        .having(func.min(Job.state) == JobState.DONE, func.max(Job.state) == JobState.DONE)
    ).all()
    candidates = [study_uid for study_uid, at in confirmed if at is not None and at <= cutoff]
    if not candidates:
        return []
    unsent = set(
        session.scalars(
            select(STUDY_OF).where(Job.kind == FORWARD, STUDY_OF.in_(candidates), Job.state != JobState.DONE)
        )
    )
    return [uid for uid in candidates if uid not in unsent]
