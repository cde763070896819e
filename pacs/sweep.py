"""The orphan sweep: objects in the store that no index row references.

They exist only when a process died between writing an object and committing its row (the
sender never got Success for them, so it will resend), or when an ingest could not delete
its own object after a failed index transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pacs import events
from pacs.index.db import append_change, transaction
from pacs.index.models import Instance, Quarantine
from pacs.index.types import utcnow
from pacs.storage import BlobStore

log = structlog.get_logger(__name__)
SWEPT_PREFIXES = ("instances", "quarantine")


def sweep_orphans(
    store: BlobStore, sessions: sessionmaker[Session], grace: timedelta, *, now: datetime | None = None
) -> list[str]:
    """Delete unreferenced objects older than ``grace``; returns their keys."""
    cutoff = (now or utcnow()) - grace
    swept: list[str] = []
    for prefix in SWEPT_PREFIXES:
        old = [info for info in store.list(prefix) if info.modified <= cutoff]
        for start in range(0, len(old), 500):
            chunk = old[start : start + 500]
            keys = [info.key for info in chunk]
            with transaction(sessions) as session:
                referenced = set(session.scalars(select(Instance.object_key).where(Instance.object_key.in_(keys))))
                referenced |= set(session.scalars(select(Quarantine.object_key).where(Quarantine.object_key.in_(keys))))
            for info in chunk:
                if info.key in referenced:
                    continue
                store.delete(info.key)
                swept.append(info.key)
                with transaction(sessions) as session:
                    append_change(session, events.ORPHAN_SWEPT, object_key=info.key, size=info.size)
                log.warning("storage.orphan_swept", object_key=info.key, size=info.size)
    return swept
