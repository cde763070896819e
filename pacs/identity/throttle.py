"""Failed authentication, slowed down per key (issue G): after ``limit`` failures in
``window_s`` a key — a source address for bearer tokens; a login name, and separately an
address, for password logins — is refused (HTTP 429, ``Retry-After``) until its oldest failure
leaves the window, whatever it sends, a valid token or password too, so guessing cannot go on.
In-process: each web process keeps its own count (behind N web processes a key gets N × the
limit)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    retry_after_s: int = 0
    newly_blocked: bool = False  # this failure started the block (audited once)


# Keys whose failures all left the window are forgotten when they are next looked at; a spray
# of never-repeated keys (a login name per guess) is swept once the table holds this many.
SWEEP_ABOVE = 100_000


class FailureThrottle:
    def __init__(self, limit: int, window_s: float, *, clock: object = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures

    def check(self, address: str) -> Verdict:
        """Whether ``address`` is refused now."""
        now = self._now()
        with self._lock:
            failures = self._recent(address, now)
            if len(failures) >= self.limit:
                return Verdict(True, max(1, int(self.window_s - (now - failures[0])) + 1))
        return Verdict(False)

    def forgive(self, address: str) -> None:
        """Forget the failures of ``address`` (a login that then succeeded)."""
        with self._lock:
            self._failures.pop(address, None)

    def fail(self, address: str) -> Verdict:
        """Count one failure; returns whether the address is now refused."""
        now = self._now()
        with self._lock:
            failures = self._recent(address, now)
            failures.append(now)
            self._failures[address] = failures
            if len(self._failures) > SWEEP_ABOVE:
                self._failures = {k: f for k, f in self._failures.items() if now - f[-1] < self.window_s}
            if len(failures) >= self.limit:
                return Verdict(True, max(1, int(self.window_s - (now - failures[0])) + 1), len(failures) == self.limit)
        return Verdict(False)
