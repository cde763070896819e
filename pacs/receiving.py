"""What every process that receives DICOM runs: the orphan sweep at start, the receiver, and
(optionally) the stability watcher. ``yunying receiver`` runs it alone, ``yunying serve``
beside the web app."""

from __future__ import annotations

import threading
from datetime import timedelta

import structlog

from pacs.dimse.receiver import Receiver
from pacs.index.db import IndexUnavailable
from pacs.service import Services, settle_heap
from pacs.stability import StabilityWatcher
from pacs.storage import StoreUnavailable
from pacs.sweep import sweep_orphans

log = structlog.get_logger(__name__)


class Receiving:
    def __init__(self, services: Services, *, stability: bool = True, sweep: bool = True) -> None:
        settings = services.settings
        self.services = services
        self.sweep = sweep
        self._stop = threading.Event()
        self.receiver = Receiver(settings, services.ingest, services.sessions)
        self.watcher = (
            StabilityWatcher(
                services.sessions,
                settings.stability_seconds,
                settings.stability_poll_s,
                manifest_wait_s=settings.manifest_wait_s,
            )
            if stability
            else None
        )

    def start(self, *, reuse_port: bool = False) -> None:
        """Returns once the DICOM port listens. A store or index that is down only skips the sweep."""
        if self.sweep:
            self._sweep()
            threading.Thread(target=self._sweep_periodically, name="orphan-sweeper", daemon=True).start()
        self.receiver.start(reuse_port=reuse_port)
        if self.watcher:
            self.watcher.start()
        settle_heap()

    def _sweep(self) -> None:
        try:
            sweep_orphans(
                self.services.store, self.services.sessions, timedelta(seconds=self.services.settings.orphan_grace_s)
            )
        except (StoreUnavailable, IndexUnavailable) as exc:
            log.warning("sweep.skipped", error=str(exc))
        except Exception:  # the sweeper must outlive any one bad round
            log.exception("sweep.failed")

    def _sweep_periodically(self) -> None:
        while not self._stop.wait(self.services.settings.orphan_sweep_interval_s):
            self._sweep()

    def stop(self) -> None:
        self._stop.set()
        if self.watcher:
            self.watcher.stop()
        self.receiver.stop()
