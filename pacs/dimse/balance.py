"""Least connections between receiver processes that accept from one listening socket.

``yunying receiver --processes N`` (pacs/receiver_processes.py) binds the DICOM port once and
hands the socket to N worker processes. The earlier shape gave each worker a socket of its own
on the port (``SO_REUSEPORT``), and the kernel hashed each connection to one of them: four
associations on two processes were split 2/2 in only some runs, 3/1 or 4/0 in the others, and
one process then did the work of two while the other idled (docs/performance.md, section 4).

Here every worker may accept from the same queue. Each publishes how many connections it holds
in memory the workers share, and a worker that holds more than a sibling leaves the next
connection to that sibling. It waits so for at most ``YIELD_AT_MOST_S``: a sibling that is hung,
or busy for longer, costs each new connection that delay, never the connection itself.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import MutableSequence
from dataclasses import dataclass

# How long a worker leaves a waiting connection to a less loaded sibling before taking it itself.
YIELD_AT_MOST_S = 0.05
# Two yields further apart than this are about different waiting connections.
_SAME_CONNECTION_S = 0.01


class SharedLoad:
    """The live connections of every worker (``counts``, shared memory), this one's at ``index``.

    Only worker ``index`` writes ``counts[index]``; its own threads serialise on a lock.
    """

    def __init__(self, counts: MutableSequence[int], index: int) -> None:
        self.counts = counts
        self.index = index
        self._lock = threading.Lock()
        self._yield_started = 0.0
        self._last_yield = 0.0

    def taken(self) -> None:
        with self._lock:
            self.counts[self.index] += 1

    def released(self) -> None:
        with self._lock:
            self.counts[self.index] = max(0, self.counts[self.index] - 1)

    def should_yield(self) -> bool:
        """True while a sibling holds fewer connections than this worker, for at most
        ``YIELD_AT_MOST_S`` per waiting connection."""
        own = self.counts[self.index]
        if not any(count < own for count in self.counts):
            return False
        now = time.monotonic()
        if now - self._last_yield > _SAME_CONNECTION_S:
            self._yield_started = now
        self._last_yield = now
        return now - self._yield_started < YIELD_AT_MOST_S


@dataclass(frozen=True)
class SharedListening:
    """What a worker process receives from its supervisor: the listening sockets (the TLS one
    only where ``dicom_tls_port`` is set) and the shared load."""

    plain: socket.socket
    tls: socket.socket | None
    load: SharedLoad
