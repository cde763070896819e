"""The hand-off from images to reading (DESIGN.md): a stable study becomes *ready for reading*
once the AI worker is done with it, or when reading's sweeper decides AI is late. Both call
``mark_ready_for_reading``, which appends ``study.ready_for_reading`` and queues the routing job
in the caller's transaction, so the hand-off is never lost between the two."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from pacs import events
from pacs.index.db import append_change
from pacs.index.models import Job, Study, StudyState
from pacs.index.types import utcnow


def mark_ready_for_reading(
    session: Session,
    study_uid: str,
    *,
    reason: str,
    actor: str,
    ai: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Hand a stable study to reading; returns ``False`` (and changes nothing) when the study is
    unknown, not stable (more images are arriving: it will be handed over when stable again) or
    already handed over since it last turned stable. ``ai`` is what the pre-screen found
    (suggested priority, flags), carried to the router in the job; AI that finishes after the
    sweeper handed the study over still queues a job, so its flags reach the reading task."""
    now = now or utcnow()
    taken = cast(
        CursorResult[Any],
        session.execute(
            update(Study)
            .where(Study.study_uid == study_uid, Study.state == StudyState.STABLE, Study.ready_at.is_(None))
            .values(ready_at=now)
        ),
    ).rowcount
    if taken:
        site_id = session.scalar(select(Study.site_id).where(Study.study_uid == study_uid))
        append_change(
            session, events.STUDY_READY_FOR_READING, study_uid=study_uid, site_id=site_id, actor=actor, reason=reason
        )
    elif not ai:
        return False
    session.add(
        Job(
            kind=events.JOB_ROUTE_STUDY,
            payload={"study_uid": study_uid, "reason": reason, "ai": ai or {}},
            next_run_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return bool(taken)
