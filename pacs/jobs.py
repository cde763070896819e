"""Taking jobs from the ``job`` table. Jobs are rows inserted with the change that causes them
(DESIGN.md); a short job is taken and done inside one transaction, so a crash rolls the take
back with the work and the job is simply taken again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.db import transaction
from pacs.index.models import Job, JobState
from pacs.index.types import utcnow


def next_due(session: Session, kind: str, *, now: datetime | None = None) -> Job | None:
    """The oldest due pending job of ``kind``, locked for this transaction. PostgreSQL skips
    rows another worker holds (``FOR UPDATE SKIP LOCKED``); SQLite's ``BEGIN IMMEDIATE`` lets
    one writer in at a time, so no two transactions see the same pending row."""
    statement = (
        select(Job)
        .where(Job.kind == kind, Job.state == JobState.PENDING, Job.next_run_at <= (now or utcnow()))
        .order_by(Job.next_run_at, Job.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return session.scalar(statement)


def record_failure(
    sessions: sessionmaker[Session],
    job_id: int,
    error: str,
    *,
    backoff: timedelta = timedelta(seconds=5),
    now: datetime | None = None,
) -> Job:
    """Count a failed attempt (in its own transaction, after the work's was rolled back): retry
    after ``backoff`` doubled per attempt, or stop as ``failed`` when the budget is spent."""
    now = now or utcnow()
    with transaction(sessions) as session:
        job = session.get_one(Job, job_id)
        job.attempts += 1
        job.last_error = error[:2000]
        job.updated_at = now
        if job.attempts >= job.max_attempts:
            job.state = JobState.FAILED
        else:
            job.next_run_at = now + backoff * 2 ** (job.attempts - 1)
        return job
