"""Prometheus metrics (issue G).

Two kinds. **Process metrics** count what this process did — instances received by outcome,
bytes, associations, the ingest latency histogram — in prometheus_client's default registry; a
receiver process serves them on ``YUNYING_METRICS_PORT`` (one port per ``--processes`` child:
port, port+1, …), the embedded service on ``/metrics``. **Index figures** are read from the index
at scrape time (cached a few seconds): queued jobs and the oldest one's age per kind, studies
receiving, quarantined files — the same answer from whichever web process is scraped. Other
packages add their own index figures (``reading/metrics.py``: open tasks, SLA breaches,
deliveries) through ``IndexCollector``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Job, JobState, Quarantine, Study, StudyState
from pacs.index.types import utcnow

log = structlog.get_logger(__name__)

INSTANCES: Final = Counter(
    "yunying_instances_received", "Instances received (C-STORE, STOW-RS, import), by ingest outcome", ["outcome"]
)
RECEIVED_BYTES: Final = Counter("yunying_received_bytes", "Bytes of the Part-10 files received")
ASSOCIATIONS: Final = Counter(
    "yunying_associations", "DICOM associations requested of the receiver, by result", ["result"]
)
OPEN_ASSOCIATIONS: Final = Gauge("yunying_associations_open", "DICOM associations open now in this process")
INGEST_SECONDS: Final = Histogram(
    "yunying_ingest_seconds",
    "Time to ingest one instance: inspect, store, index (what a C-STORE waits before its answer)",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 15.0),
)

Figures = Callable[[Session], Iterable[Metric]]


def pacs_figures(session: Session) -> Iterable[Metric]:
    """Job queue depth and oldest age per kind, studies receiving, quarantined files."""
    now = utcnow()
    depth = GaugeMetricFamily("yunying_jobs_queued", "Jobs waiting to run, per kind", labels=["kind"])
    oldest = GaugeMetricFamily(
        "yunying_jobs_oldest_age_seconds", "Age of the oldest job waiting to run, per kind", labels=["kind"]
    )
    for kind, count, first in session.execute(
        select(Job.kind, func.count(), func.min(Job.created_at))
        .where(Job.state.in_([JobState.PENDING, JobState.RUNNING]))
        .group_by(Job.kind)
    ):
        depth.add_metric([kind], count)
        oldest.add_metric([kind], max(0.0, (now - first).total_seconds()) if first else 0.0)
    yield depth
    yield oldest
    receiving = session.scalar(select(func.count()).where(Study.state == StudyState.RECEIVING)) or 0
    yield GaugeMetricFamily("yunying_studies_receiving", "Studies still receiving (not stable yet)", value=receiving)
    quarantined = GaugeMetricFamily(
        "yunying_quarantined_files", "Files kept aside in quarantine, per reason", labels=["reason"]
    )
    for reason, count in session.execute(select(Quarantine.reason_code, func.count()).group_by(Quarantine.reason_code)):
        quarantined.add_metric([reason], count)
    yield quarantined


class IndexCollector(Collector):
    """Index figures at scrape time, cached for ``ttl_s`` so a tight scrape interval (or several
    Prometheus servers) costs the index one round of queries per interval. An index that is
    down yields ``yunying_index_up 0`` and no figures, rather than failing the scrape."""

    def __init__(self, sessions: sessionmaker[Session], figures: Sequence[Figures], *, ttl_s: float = 5.0) -> None:
        self.sessions = sessions
        self.figures = list(figures)
        self.ttl_s = ttl_s
        self._cached: tuple[float, list[Metric]] = (0.0, [])
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            at, metrics = self._cached
            if time.monotonic() - at > self.ttl_s or not metrics:
                metrics = self._read()
                self._cached = (time.monotonic(), metrics)
        return list(metrics)

    def _read(self) -> list[Metric]:
        try:
            with transaction(self.sessions, read_only=True) as session:
                found = [metric for figures in self.figures for metric in figures(session)]
            up = 1
        except IndexUnavailable as exc:
            log.warning("metrics.index_unavailable", error=str(exc))
            found, up = [], 0
        return [
            GaugeMetricFamily("yunying_index_up", "Whether the index answered the metrics queries", value=up),
            *found,
        ]


def exposition(index: CollectorRegistry | None = None) -> bytes:
    """This process's metrics, then the index figures, in the Prometheus text format."""
    return generate_latest(REGISTRY) + (generate_latest(index) if index is not None else b"")
