"""A test-owned TCP proxy on loopback, to cut a dependency (PostgreSQL) without touching the
machine's own service — and to play a thin rural line (``LinkShape``): one-way latency, a rate
cap, "loss" and outages.

What "loss" means here, honestly: a proxy sits above TCP, so it cannot drop a segment — the
kernel's TCP on loopback would never see it lost. What a lost segment costs a TCP connection is
a retransmission: the bytes behind it wait (head-of-line blocking) for about a retransmission
timeout. So each chunk is, with probability ``loss``, held back ``rto_s`` before it and
everything after it on that connection goes on. Whole-link losses (the line goes down) are
``cut()`` … ``restore()``: every connection reset, new ones reset at once until restored.

The proxy keeps its port bound through a cut. Closing the listener and binding the same port
again at ``restore()`` lost the port on a busy machine: another process took it as an ephemeral
port in the seconds between (CI saw ``Address already in use``).
"""

from __future__ import annotations

import queue
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

CHUNK = 16 * 1024


@dataclass(frozen=True)
class LinkShape:
    latency_s: float = 0.0  # one way, each direction
    rate_kbps: int = 0  # per direction; 0: no cap
    loss: float = 0.0  # probability a chunk waits a retransmission timeout
    rto_s: float = 0.3
    buffer_chunks: int = 8  # what the bottleneck queues before the sender feels back-pressure
    seed: int = 0


class _Pacer:
    """The bottleneck of one direction: chunks leave one after the other at the rate."""

    def __init__(self, rate_kbps: int) -> None:
        self.bytes_per_s = rate_kbps * 1000 / 8
        self.free_at = 0.0
        self.lock = threading.Lock()

    def slot(self, size: int, ready_at: float) -> float:
        if self.bytes_per_s <= 0:
            return ready_at
        with self.lock:
            start = max(ready_at, self.free_at)
            self.free_at = start + size / self.bytes_per_s
            return self.free_at


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], shape: LinkShape | None = None) -> None:
        self.upstream = upstream
        self.shape = shape or LinkShape()
        self.port = 0
        self._listener: socket.socket | None = None
        self._down = False
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._random = random.Random(self.shape.seed)
        # One bottleneck per direction shared by every connection through this proxy: the line.
        self._pacers = (_Pacer(self.shape.rate_kbps), _Pacer(self.shape.rate_kbps))
        self.connections_made = 0
        self.bytes_up = 0  # client → upstream

    def start(self) -> TcpProxy:
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    @property
    def shaped(self) -> bool:
        shape = self.shape
        return bool(shape.latency_s or shape.rate_kbps or shape.loss)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._down:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for end in (client, server):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += [client, server]
                self.connections_made += 1
            if self.shaped:
                # The TCP handshake itself costs a round trip on a real line.
                time.sleep(2 * self.shape.latency_s)
            for direction, (source, target) in enumerate(((client, server), (server, client))):
                if self.shaped:
                    self._shaped_pump(source, target, self._pacers[direction], upstream=direction == 0)
                else:
                    threading.Thread(target=self._pump, args=(source, target, direction == 0), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream:
                    self.bytes_up += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            _shut(source, target)

    def _shaped_pump(self, source: socket.socket, target: socket.socket, pacer: _Pacer, *, upstream: bool) -> None:
        shape = self.shape
        line: queue.Queue[tuple[float, bytes] | None] = queue.Queue(maxsize=shape.buffer_chunks)

        def read() -> None:
            try:
                while data := source.recv(CHUNK):
                    delay = shape.latency_s
                    with self._lock:
                        if shape.loss and self._random.random() < shape.loss:
                            delay += shape.rto_s
                        if upstream:
                            self.bytes_up += len(data)
                    line.put((time.monotonic() + delay, data))
            except OSError:
                pass
            finally:
                line.put(None)

        def write() -> None:
            try:
                while (item := line.get()) is not None:
                    due, data = item
                    leave = pacer.slot(len(data), due)
                    wait = leave - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    target.sendall(data)
            except OSError:
                pass
            finally:
                _shut(source, target)

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def cut(self) -> None:
        """Drop every connection and reset new ones, as a dead host would, until ``restore()``."""
        self._down = True
        self._drop_connections()

    def restore(self) -> None:
        self._down = False

    def close(self) -> None:
        self._down = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # unblocks accept() on Linux; close() alone does not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        self._drop_connections()

    def _drop_connections(self) -> None:
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self._connections.clear()


def _reset(connection: socket.socket) -> None:
    """Close with an RST (linger 0): the client sees its connection reset, not a clean end."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def _shut(*ends: socket.socket) -> None:
    """Shut both directions of each socket; one already closed is fine."""
    for end in ends:
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
