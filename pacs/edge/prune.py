"""Keeping the edge's disk bounded: a study the centre confirmed whole (manifest satisfied, every
instance acknowledged) is deleted locally once ``retention`` has passed since — never before.
Index rows go first, in one transaction; the objects after (one that cannot be deleted now is
an orphan the receiver's sweep removes later)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.edge import queue
from pacs.index.db import append_change, transaction
from pacs.index.models import Instance, Job, Series, Study
from pacs.index.types import utcnow
from pacs.periodic import Periodic
from pacs.storage import BlobStore, StoreUnavailable

log = structlog.get_logger(__name__)
PRUNED = "edge.study_pruned"


def prune(
    sessions: sessionmaker[Session], store: BlobStore, retention: timedelta, *, now: datetime | None = None
) -> list[str]:
    """Delete the studies acknowledged longer than ``retention`` ago; returns their UIDs."""
    now = now or utcnow()
    with transaction(sessions, read_only=True) as session:
        due = queue.acknowledged_before(session, now - retention)
    pruned = []
    for study_uid in due:
        with transaction(sessions) as session:
            study = session.scalar(select(Study).where(Study.study_uid == study_uid))
            if study is None:
                continue
            series = list(session.scalars(select(Series.id).where(Series.study_pk == study.id)))
            keys = list(session.scalars(select(Instance.object_key).where(Instance.series_pk.in_(series))))
            # Checked again in this (write) transaction: nothing may have been queued meanwhile.
            if study_uid not in queue.acknowledged_before(session, now - retention):
                continue
            session.execute(delete(Instance).where(Instance.series_pk.in_(series)))
            session.execute(delete(Series).where(Series.study_pk == study.id))
            session.execute(delete(Study).where(Study.id == study.id))
            session.execute(
                delete(Job).where(
                    Job.kind.in_([queue.FORWARD, queue.MANIFEST]),
                    queue.STUDY_OF == study_uid,
                )
            )
            append_change(session, PRUNED, study_uid=study_uid, instances=len(keys))
        for key in keys:
            try:
                store.delete(key)
            except StoreUnavailable as exc:
                log.warning("edge.prune_delete_failed", object_key=key, error=str(exc))
        log.info("edge.study_pruned", study_uid=study_uid, instances=len(keys))
        pruned.append(study_uid)
    return pruned


class Pruner(Periodic):
    def __init__(
        self, sessions: sessionmaker[Session], store: BlobStore, retention_days: float, interval_s: float
    ) -> None:
        super().__init__("edge-pruner", interval_s)
        self.sessions = sessions
        self.store = store
        self.retention = timedelta(days=retention_days)

    def round(self) -> None:
        prune(self.sessions, self.store, self.retention)
