"""The edge box in one process: the centre's own receiver (same ingest, same promises: Success
only once the instance is durably stored and indexed, and now also queued for the centre), the
local stability watcher that queues each study's manifest, the forwarder, the report puller, the
pruner and the status page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit import AccessLog
from pacs.edge import queue
from pacs.edge.centre import CentreApi
from pacs.edge.commitment import PUSH_MODEL, CommitmentSCP
from pacs.edge.forwarder import Forwarder, reclaim_leases
from pacs.edge.links import DicomLink, Link, StowLink
from pacs.edge.prune import Pruner
from pacs.edge.reports import ReportPuller
from pacs.edge.settings import EdgeSettings, Transport
from pacs.edge.status_page import StatusPage
from pacs.edge.throttle import RateLimiter
from pacs.identity.sites import add_site, add_site_ae, get_or_create_consortium
from pacs.index.db import IndexUnavailable, make_engine, make_sessionmaker, transaction
from pacs.index.migrate import upgrade
from pacs.index.models import Site, SiteAE
from pacs.ingest import Ingest, IngestOutcome, Origin, OutcomeKind
from pacs.receiving import Receiving
from pacs.service import Services, settle_heap
from pacs.stability import StabilityWatcher
from pacs.storage import open_store

log = structlog.get_logger(__name__)
CONSORTIUM = "edge"  # the edge's index knows one consortium and one site: its own clinic


class EdgeIngest(Ingest):
    """The centre's ingest, plus: an accepted instance is queued for the centre before the
    modality hears Success. Should the queue be unreachable the modality is told to retry
    (0xA700), and its re-send (a duplicate here) queues it then."""

    def receive(self, path: Path, origin: Origin) -> IngestOutcome:
        outcome = super().receive(path, origin)
        if not outcome.accepted or outcome.kind is OutcomeKind.CONFLICT:
            return outcome  # a conflicting copy is quarantined here; the first one is what goes
        assert outcome.study_uid is not None and outcome.sop_instance_uid is not None
        try:
            with transaction(self.sessions) as session:
                queue.enqueue_forward(session, outcome.study_uid, outcome.sop_instance_uid, now=self.clock())
        except IndexUnavailable as exc:
            return IngestOutcome(
                OutcomeKind.UNAVAILABLE,
                f"stored but not queued: {exc}",
                "",
                outcome.study_uid,
                outcome.sop_instance_uid,
            )
        return outcome


def sync_allow_list(sessions: sessionmaker[Session], settings: EdgeSettings) -> int:
    """Make the local site's AE allow-list exactly ``YUNYING_EDGE_MODALITIES``; returns the site id."""
    with transaction(sessions) as session:
        consortium = get_or_create_consortium(session, CONSORTIUM)
        site = session.scalar(select(Site).where(Site.consortium_id == consortium.id, Site.name == settings.site_name))
        if site is None:
            site = add_site(session, consortium=CONSORTIUM, name=settings.site_name, tier="township", actor="edge")
        wanted = set(settings.allowed_modalities())
        present = {
            (e.ae_title, e.allowed_address): e for e in session.scalars(select(SiteAE).where(SiteAE.site_id == site.id))
        }
        for pair, entry in present.items():
            if pair not in wanted:
                session.execute(delete(SiteAE).where(SiteAE.id == entry.id))
        for title, address in sorted(wanted - set(present)):
            add_site_ae(session, site=site, ae_title=title, allowed_address=address, actor="edge")
        return site.id


def open_edge_services(settings: EdgeSettings) -> Services:
    """The edge's index (migrated) and folder store, with ``EdgeIngest``."""
    receiver = settings.receiver_settings()
    upgrade(receiver.resolved_database_url)
    engine = make_engine(receiver.resolved_database_url, pool_size=max(5, receiver.max_associations + 4))
    sessions = make_sessionmaker(engine)
    store = open_store(receiver)
    ingest = EdgeIngest(store, sessions, national_id_issuer=receiver.national_id_issuer)
    return Services(receiver, engine, sessions, store, ingest, AccessLog(sessions))


def queue_manifest(session: Session, study_uid: str, now: datetime) -> None:
    queue.enqueue_manifest(session, study_uid, now=now)


class Edge:
    """``start()`` returns once the DICOM port and the status page listen."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.services = open_edge_services(settings)
        self.site_id = sync_allow_list(self.services.sessions, settings)
        self.limiter = RateLimiter(settings.bandwidth_kbps)
        self.api = CentreApi(settings, self.limiter)
        self.receiving = Receiving(self.services, stability=False)
        receiver = self.receiving.receiver
        receiver.ae.add_supported_context(PUSH_MODEL)
        receiver.extra_handlers += CommitmentSCP(self.services.sessions, receiver.scp).handlers()
        self.watcher = StabilityWatcher(
            self.services.sessions, settings.stability_seconds, settings.stability_poll_s, on_stable=queue_manifest
        )
        self.forwarders = [
            Forwarder(settings, self.services.sessions, self._link(), self.api, index=i)
            for i in range(settings.associations)
        ]
        self.reports = ReportPuller(self.api, settings.reports_path, settings.reports_poll_s)
        self.pruner = Pruner(
            self.services.sessions, self.services.store, settings.retention_days, settings.prune_interval_s
        )
        self.page = (
            StatusPage(
                settings.status_host, settings.status_port, settings.site_name, self.progress, settings.reports_path
            )
            if settings.status_port
            else None
        )

    def _link(self) -> Link:
        if self.settings.transport is Transport.STOW:
            return StowLink(self.api, self.services.store, self.settings.transit_compression)
        return DicomLink(self.settings, self.services.store, self.limiter)

    def progress(self) -> list[queue.StudyProgress]:
        with transaction(self.services.sessions, read_only=True) as session:
            return queue.study_progress(session)

    @property
    def dicom_port(self) -> int:
        return self.receiving.receiver.port

    def start(self) -> None:
        self.receiving.start()
        self.watcher.start()
        reclaimed = reclaim_leases(self.services.sessions)
        if reclaimed:
            log.info("edge.resuming", jobs=reclaimed)
        for forwarder in self.forwarders:
            forwarder.start()
        self.reports.start()
        self.pruner.start()
        if self.page is not None:
            self.page.start()
        settle_heap()
        log.info(
            "edge.started",
            ae_title=self.settings.ae_title,
            port=self.dicom_port,
            transport=self.settings.transport.value,
            centre=self.settings.centre_url
            if self.settings.transport is Transport.STOW
            else f"{self.settings.centre_ae_title}@{self.settings.centre_host}:{self.settings.centre_port}",
            modalities=self.settings.modalities,
            status_page=self.page.port if self.page else None,
        )

    def stop(self) -> None:
        if self.page is not None:
            self.page.stop()
        self.pruner.stop()
        self.reports.stop()
        for forwarder in self.forwarders:
            forwarder.stop()
        self.watcher.stop()
        self.receiving.stop()
        self.api.close()
        self.services.close()
