"""What every background round of Yunying shares: a daemon thread that runs ``round()`` every
``interval_s`` seconds until ``stop()``, and outlives any one failed round.

A round that finds the index or the store down is a warning (``<name>.skipped``: the next round
tries again); any other failure is logged with its traceback (``<name>.failed``) and the thread
goes on. Subclasses name further expected failures in ``expected``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import structlog

from pacs.index.db import IndexUnavailable
from pacs.storage.base import StoreUnavailable

log = structlog.get_logger(__name__)


class Periodic(ABC):
    expected: tuple[type[Exception], ...] = (IndexUnavailable, StoreUnavailable)

    def __init__(self, name: str, interval_s: float, *, join_s: float = 10.0) -> None:
        self.name = name  # the thread's name and the prefix of its log events
        self.interval_s = interval_s
        self.join_s = join_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abstractmethod
    def round(self) -> None:
        """The work of one round; what it raises is handled by ``run_round``."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.join_s)

    def run_round(self) -> None:
        """One round now, with the thread's failure handling (also for a round at start or stop)."""
        try:
            self.round()
        except self.expected as exc:
            log.warning(f"{self.name}.skipped", error=str(exc))
        except Exception:  # the thread must outlive any one bad round
            log.exception(f"{self.name}.failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_round()
