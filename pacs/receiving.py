"""What every process that receives DICOM runs: the orphan sweep at start, the receiver, and
(optionally) the stability watcher. ``yunying receiver`` runs it alone, ``yunying serve``
beside the web app."""

from __future__ import annotations

from datetime import timedelta

from pacs.dimse.balance import SharedListening
from pacs.dimse.receiver import Receiver
from pacs.periodic import Periodic
from pacs.service import Services, settle_heap
from pacs.stability import StabilityWatcher
from pacs.sweep import sweep_orphans


class OrphanSweeper(Periodic):
    """Removes stored objects the index never took (a crash between store and commit), once
    they are older than ``orphan_grace_s``; every ``orphan_sweep_interval_s``."""

    def __init__(self, services: Services) -> None:
        super().__init__("orphan-sweeper", services.settings.orphan_sweep_interval_s)
        self.services = services

    def round(self) -> None:
        sweep_orphans(
            self.services.store, self.services.sessions, timedelta(seconds=self.services.settings.orphan_grace_s)
        )


class Receiving:
    def __init__(self, services: Services, *, stability: bool = True, sweep: bool = True) -> None:
        settings = services.settings
        self.services = services
        self.sweeper = OrphanSweeper(services) if sweep else None
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

    def start(self, shared: SharedListening | None = None) -> None:
        """Returns once the DICOM port listens. A store or index that is down only skips the sweep."""
        if self.sweeper:
            self.sweeper.run_round()
            self.sweeper.start()
        self.receiver.start(shared)
        if self.watcher:
            self.watcher.start()
        settle_heap()

    def stop(self) -> None:
        if self.sweeper:
            self.sweeper.stop()
        if self.watcher:
            self.watcher.stop()
        self.receiver.stop()
