"""An association server hardened beyond what pynetdicom 3.0.4 gives (FIELD-NOTES.md):

* every accepted socket gets TCP_NODELAY (else each message waits ~40 ms for Nagle) and a
  receive timeout, so a peer that connects and goes silent frees its slot;
* a PDU longer than we can accept is refused before any of it is buffered (pynetdicom reads
  whatever length a peer declares), and a whole PDU must arrive within a deadline (a peer
  trickling one byte a second cannot hold a thread for ever);
* reads use large ``recv_into`` calls instead of pynetdicom's 4 KiB loop;
* the association's two threads wait for work instead of polling every 1 ms (reactor.py);
* several worker processes may share one listening socket, each leaving a waiting connection to
  a less loaded sibling (balance.py).

This relies on pynetdicom internals (``AssociationSocket.recv``, ``RequestHandler``), which is
why pynetdicom is pinned exactly in pyproject.toml.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from typing import Any, cast

import structlog
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from pacs.dimse.balance import SharedLoad
from pacs.dimse.proxy import ProxyHeaderError, read_proxy_v2, trusted
from pacs.dimse.reactor import Once, ReactiveAssociation, ReactiveDUL, make_reactive
from pacs.dimse.tls import TlsAcceptor

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

log = structlog.get_logger(__name__)

# PS3.8 9.3.1: a PDU header is 6 bytes; an A-ASSOCIATE-RQ carries at most a few kilobytes of
# items, and P-DATA-TF may not exceed the maximum length we advertised.
PDU_OVERHEAD = 64 * 1024


class PduTooLong(OSError):
    """The peer declared a PDU longer than we accept."""


class HardenedAssociationSocket(AssociationSocket):
    max_pdu_bytes: int = 1_048_576 + PDU_OVERHEAD
    pdu_deadline_s: float = 60.0

    def recv(self, nr_bytes: int) -> bytearray:
        if nr_bytes > self.max_pdu_bytes:
            log.warning("dimse.pdu_too_long", declared=nr_bytes, limit=self.max_pdu_bytes)
            raise PduTooLong(f"peer declared a PDU of {nr_bytes} bytes; the limit is {self.max_pdu_bytes}")
        sock = self.socket
        assert sock is not None
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        received = 0
        deadline = time.monotonic() + self.pdu_deadline_s
        while received < nr_bytes:
            count = sock.recv_into(view[received:], min(nr_bytes - received, 1 << 20))
            if count == 0:
                return buffer[:received]  # peer closed: the DUL reports a short PDU
            received += count
            if received < nr_bytes and time.monotonic() > deadline:
                raise TimeoutError(f"PDU not complete after {self.pdu_deadline_s} s ({received}/{nr_bytes} bytes)")
        return buffer


class HardenedRequestHandler(RequestHandler):
    refused = False

    def setup(self) -> None:
        """Behind a balancer, the client's real address from the PROXY v2 header; on the TLS
        port, the handshake — in this connection's thread, under a deadline."""
        server = self.server
        assert isinstance(server, HardenedServer)
        client = cast(socket.socket, self.request)
        if server.proxy_from and trusted(str(self.client_address[0]), server.proxy_from):
            try:
                real = read_proxy_v2(client)
            except (ProxyHeaderError, OSError) as exc:
                self.refused = True
                log.warning("proxy.refused", balancer=self.client_address[0], error=str(exc))
                client.close()
                return
            if real is not None:
                self.client_address = real
        if server.tls is None:
            return
        try:
            self.request = server.tls.handshake(client, server.socket_idle_timeout_s)
        except (ssl.SSLError, OSError) as exc:
            self.refused = True
            log.warning("tls.refused", source=self.client_address[0], error=str(exc))

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, HardenedServer)
        started = False
        try:
            if not self.refused:
                super().handle()
                started = True  # the association's thread ends the connection's count
        finally:
            if not started:
                server.connection_ended()

    def _create_association(self) -> Any:
        assoc = super()._create_association()
        server = self.server
        assert isinstance(server, HardenedServer)
        assoc.__class__ = server.association_class  # a subclass that adds methods, no state
        reactive = cast(ReactiveAssociation, assoc)
        make_reactive(reactive)  # its two threads wait for work instead of polling every 1 ms
        # The connection stops counting when its socket closes (a balancer's health check that
        # connects and hangs up included: pynetdicom's thread for it waits out the ACSE timeout)
        # or, at the latest, when the association's thread ends.
        ended = Once(server.connection_ended)
        reactive._ended = ended
        cast(ReactiveDUL, reactive.dul)._on_closed = ended
        sock = cast(HardenedAssociationSocket, assoc.dul.socket)
        sock.__class__ = HardenedAssociationSocket
        sock.max_pdu_bytes = server.max_pdu_bytes
        sock.pdu_deadline_s = server.pdu_deadline_s
        return assoc


class HardenedServer(ThreadedAssociationServer):
    """Pass as ``server_class`` to ``AE.make_server`` with the keyword arguments below."""

    daemon_threads = True

    def __init__(
        self,
        *args: Any,
        max_pdu_bytes: int = 1_048_576,
        pdu_deadline_s: float = 60.0,
        socket_idle_timeout_s: float = 30.0,
        listen_socket: socket.socket | None = None,
        load: SharedLoad | None = None,
        association_class: type[ReactiveAssociation] = ReactiveAssociation,
        tls: TlsAcceptor | None = None,
        proxy_from: list[IPNetwork] | None = None,
        **kwargs: Any,
    ) -> None:
        self.association_class = association_class
        self.tls = tls
        self.proxy_from = proxy_from or []
        self.max_pdu_bytes = max_pdu_bytes + PDU_OVERHEAD
        self.pdu_deadline_s = pdu_deadline_s
        self.socket_idle_timeout_s = socket_idle_timeout_s
        self.listen_socket = listen_socket
        self.load = load
        kwargs.setdefault("request_handler", HardenedRequestHandler)
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self.listen_socket is None:
            super().server_bind()
            return
        # A socket the supervisor bound and every worker shares (receiver_processes.py):
        # non-blocking, so that a worker whose sibling took the connection finds nothing.
        assert self.socket is not None
        self.socket.close()
        self.socket = self.listen_socket
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        if self.listen_socket is None:
            super().server_activate()

    def server_close(self) -> None:
        if self.listen_socket is None:
            super().server_close()
        else:
            self.listen_socket.close()  # no shutdown(): that would stop the siblings listening too

    def connection_ended(self) -> None:
        if self.load is not None:
            self.load.released()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        if self.load is not None and self.load.should_yield():
            time.sleep(0.001)
            # socketserver takes an OSError here for "no request after all".
            raise BlockingIOError("a less loaded receiver process takes this connection")
        client, address = super().get_request()  # BlockingIOError if a sibling was quicker
        if self.load is not None:
            self.load.taken()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(self.socket_idle_timeout_s)
        return client, address
