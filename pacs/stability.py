"""Study stability: a study that received no new instance for the stability delay is *stable*;
the same transaction appends ``study.stable`` and queues the AI pre-screen job (DESIGN.md:
jobs are rows created with the change that causes them). A late instance re-opens the study
(ingest), and its next stability queues a new job.

A study of a site that sends through a clinic edge waits, beyond the quiet period, for the
edge's manifest to be satisfied (``pacs.completeness``): at most ``manifest_wait``, after which
it turns stable flagged ``manifest: missing`` with an alert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs import events
from pacs.completeness import held_back
from pacs.headers import build_headers
from pacs.index.db import append_change, transaction
from pacs.index.models import Alert, Job, Site, Study, StudyManifest, StudyState
from pacs.index.types import utcnow
from pacs.periodic import Periodic

log = structlog.get_logger(__name__)

# What follows ``study.stable`` in the same transaction: the centre queues the AI pre-screen;
# the clinic edge queues the study's manifest for the centre.
OnStable = Callable[[Session, str, datetime], None]


def queue_prescreen(session: Session, study_uid: str, now: datetime) -> None:
    session.add(
        Job(
            kind=events.JOB_AI_PRESCREEN,
            payload={"study_uid": study_uid},
            next_run_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def mark_stable_studies(
    sessions: sessionmaker[Session],
    stability: timedelta,
    *,
    now: datetime | None = None,
    batch: int = 100,
    manifest_wait: timedelta = timedelta(days=1),
    on_stable: OnStable = queue_prescreen,
) -> list[str]:
    """Mark every study quiet for ``stability`` as stable; returns their UIDs.

    Safe with several processes: each study is taken by a guarded UPDATE, so one process wins.
    """
    now = now or utcnow()
    cutoff = now - stability
    with transaction(sessions) as session:
        # A study waiting for its edge's manifest is no candidate until one came (or the wait
        # is over), so that waiting studies never crowd the batch.
        has_manifest = exists().where(StudyManifest.study_uid == Study.study_uid)
        candidates = session.execute(
            select(Study.id, Study.study_uid, Study.site_id, Site.held_for_manifest)
            .join(Site, Site.id == Study.site_id)
            .where(
                Study.state == StudyState.RECEIVING,
                Study.last_received_at <= cutoff,
                or_(Site.held_for_manifest.is_(False), has_manifest, Study.first_received_at <= now - manifest_wait),
            )
            .order_by(Study.last_received_at)
            .limit(batch)
        ).all()
    marked = []
    for study_pk, study_uid, site_id, held in candidates:
        waiting = False
        if held:
            with transaction(sessions) as session:
                waiting = held_back(session, study_pk, site_id, now=now)
                first_received = session.get_one(Study, study_pk).first_received_at
            if waiting and first_received > now - manifest_wait:
                continue
        # Everything downstream of `study.stable` (AI, reading, DICOMweb metadata) may ask for
        # the DICOM JSON headers: build those ingest left for later, before announcing it.
        build_headers(sessions, study_pk=study_pk)
        with transaction(sessions) as session:
            taken = cast(
                CursorResult[Any],
                session.execute(
                    update(Study)
                    .where(Study.id == study_pk, Study.state == StudyState.RECEIVING, Study.last_received_at <= cutoff)
                    .values(state=StudyState.STABLE, stable_at=now, ready_at=None)
                ),
            ).rowcount
            if not taken:
                continue
            study = session.get_one(Study, study_pk)
            append_change(
                session,
                events.STUDY_STABLE,
                study_uid=study_uid,
                site_id=site_id,
                num_instances=study.num_instances,
                num_series=study.num_series,
                **({"manifest": "missing"} if waiting else {}),
            )
            if waiting:
                session.add(
                    Alert(
                        kind=events.STUDY_STABLE,
                        site_id=site_id,
                        study_uid=study_uid,
                        message=(
                            f"study {study_uid} turned stable without a satisfied manifest from the site's edge "
                            f"after {manifest_wait}: it may be incomplete (check `yunying edge status` at the clinic)"
                        ),
                        created_at=now,
                    )
                )
            on_stable(session, study_uid, now)
        log.info("study.stable", study_uid=study_uid, site=site_id)
        marked.append(study_uid)
    return marked


class StabilityWatcher(Periodic):
    """A background thread that runs ``mark_stable_studies`` every ``poll_s`` seconds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        stability_s: float,
        poll_s: float,
        clock: Callable[[], datetime] = utcnow,
        *,
        manifest_wait_s: float = 86400.0,
        on_stable: OnStable = queue_prescreen,
    ) -> None:
        super().__init__("stability", poll_s, join_s=5)
        self.sessions = sessions
        self.manifest_wait = timedelta(seconds=manifest_wait_s)
        self.on_stable = on_stable
        self.stability = timedelta(seconds=stability_s)
        self.clock = clock

    def round(self) -> None:
        mark_stable_studies(
            self.sessions,
            self.stability,
            now=self.clock(),
            manifest_wait=self.manifest_wait,
            on_stable=self.on_stable,
        )
