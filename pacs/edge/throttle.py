"""The bandwidth cap: a token bucket that whatever the edge sends to the centre passes through,
so a CT going out does not take the whole of a clinic's thin line (its HIS, its telephone)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

# Small slices keep the line smooth: at 2 Mbit/s a 16 KiB slice is 65 ms on the wire.
SLICE = 16 * 1024


class RateLimiter:
    """``take(n)`` returns once ``n`` bytes may leave at ``kbps`` kilobits a second; 0 is no cap.
    Thread-safe: one bucket for the whole process. The burst is one slice, so the cap holds
    over any second, not just on average."""

    def __init__(self, kbps: int) -> None:
        self.bytes_per_s = kbps * 1000 / 8
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    @property
    def capped(self) -> bool:
        return self.bytes_per_s > 0

    def take(self, count: int) -> None:
        if not self.capped:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at)
            self._free_at = start + count / self.bytes_per_s
            wait = start - now
        if wait > 0:
            time.sleep(wait)

    def chunks(self, parts: Iterable[bytes]) -> Iterator[bytes]:
        """Re-slice a body and pace it (an HTTP upload)."""
        for part in parts:
            for start in range(0, len(part), SLICE):
                piece = part[start : start + SLICE]
                self.take(len(piece))
                yield piece
