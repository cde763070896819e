"""Taking jobs from the ``job`` table. Jobs are rows inserted with the change that causes them
(DESIGN.md). A short job is taken and done inside one transaction, so a crash rolls the take
back with the work and the job is simply taken again (``next_due``). A long one (an AI
pre-screen: seconds to minutes of work outside any transaction) is taken with a lease
(``take_leased``): the job row says who holds it until when, and a job whose holder died is
taken again once the lease has run out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
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


class LeaseLost(Exception):
    """The job's lease ran out and another worker took it (or it was finished): this worker's
    result must not be recorded. The caller rolls its transaction back."""


def take_leased(
    sessions: sessionmaker[Session],
    kind: str,
    *,
    owner: str,
    lease: timedelta,
    now: datetime | None = None,
) -> Job | None:
    """Take one job of ``kind`` for a long piece of work done outside the transaction (an AI
    pre-screen): a due pending job, or a running one whose lease ran out (its worker crashed or
    hung). Counts the attempt at the take, so a job that kills its worker each time still
    spends its budget; one whose budget is spent by lost leases is stopped as ``failed``.

    Several workers never hold the same job: PostgreSQL locks the candidate row (``FOR UPDATE
    SKIP LOCKED``, others skip it), SQLite lets one ``BEGIN IMMEDIATE`` writer in at a time, and
    on both the UPDATE is guarded by the state the candidate was seen in. Raises
    ``IndexUnavailable`` when the index cannot be reached."""
    now = now or utcnow()
    with transaction(sessions) as session:
        while True:
            due_pending = (Job.state == JobState.PENDING) & (Job.next_run_at <= now)
            lease_lost = (Job.state == JobState.RUNNING) & (Job.lease_expires_at < now)
            statement = (
                select(Job)
                .where(Job.kind == kind, or_(due_pending, lease_lost))
                .order_by(Job.next_run_at, Job.id)
                .limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                statement = statement.with_for_update(skip_locked=True)
            job = session.scalar(statement)
            if job is None:
                return None
            if job.state == JobState.RUNNING and job.attempts >= job.max_attempts:
                job.state = JobState.FAILED
                job.last_error = (
                    f"lease of {job.lease_owner} expired; {job.attempts} attempts spent "
                    f"(last error: {job.last_error or 'none recorded: the worker was lost'})"
                )[:2000]
                job.lease_owner = job.lease_expires_at = None
                job.updated_at = now
                session.flush()
                continue
            taken = cast(
                CursorResult[Any],
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.state == job.state, Job.attempts == job.attempts)
                    .values(
                        state=JobState.RUNNING,
                        lease_owner=owner,
                        lease_expires_at=now + lease,
                        attempts=Job.attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                ),
            ).rowcount
            if taken:
                session.refresh(job)
                return job


def extend_lease(
    sessions: sessionmaker[Session], job_id: int, *, owner: str, lease: timedelta, now: datetime | None = None
) -> None:
    """Keep a job this worker holds for another ``lease``; raises ``LeaseLost`` when it no
    longer holds it."""
    now = now or utcnow()
    with transaction(sessions) as session:
        _guarded(session, job_id, owner, lease_expires_at=now + lease, updated_at=now)


def finish_leased(session: Session, job_id: int, *, owner: str, now: datetime | None = None) -> None:
    """Mark a held job done in the caller's transaction — the one that records its result, so
    the result and the job's end commit together. Raises ``LeaseLost`` when another worker has
    taken the job meanwhile: the caller must roll back, the other worker's result counts. The
    job keeps ``lease_owner``: who did it."""
    _guarded(session, job_id, owner, state=JobState.DONE, lease_expires_at=None, updated_at=now or utcnow())


def fail_leased(
    sessions: sessionmaker[Session],
    job_id: int,
    error: str,
    *,
    owner: str,
    backoff: timedelta = timedelta(seconds=5),
    now: datetime | None = None,
) -> Job:
    """Give a held job back after a failed attempt (counted at the take): pending again after
    ``backoff`` doubled per attempt, or ``failed`` with ``error`` once the budget is spent.
    Raises ``LeaseLost`` when another worker has taken it meanwhile."""
    now = now or utcnow()
    with transaction(sessions) as session:
        job = session.get_one(Job, job_id)
        if job.state != JobState.RUNNING or job.lease_owner != owner:
            raise LeaseLost(f"job {job_id} is no longer held by {owner}")
        job.last_error = error[:2000]
        job.updated_at = now
        job.lease_owner = job.lease_expires_at = None
        if job.attempts >= job.max_attempts:
            job.state = JobState.FAILED
        else:
            job.state = JobState.PENDING
            job.next_run_at = now + backoff * 2 ** max(job.attempts - 1, 0)
        return job


def _guarded(session: Session, job_id: int, owner: str, **values: Any) -> None:
    held = cast(
        CursorResult[Any],
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.RUNNING, Job.lease_owner == owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if not held:
        raise LeaseLost(f"job {job_id} is no longer held by {owner}: its lease ran out and another worker took it")
