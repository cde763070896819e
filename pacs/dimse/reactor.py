"""pynetdicom's two threads per association, woken by their work instead of polling for it.

pynetdicom 3.0.4 runs two threads for each association, and both poll (its own comment reads
"TODO: try and make this event based"): the DUL thread sleeps 1 ms, then ``select``s the
socket with a zero timeout; the association thread sleeps 1 ms, then peeks at its queues. With
four associations that is eight threads waking about 1000 times a second each, every wake-up
taking the GIL from the C-STORE handlers. Profiled on the receiver (docs/performance.md,
"Where the time goes" 6.2) the loops cost 3.8 ms of CPU per image, a quarter of the whole,
and each hand-off between the threads waits up to 1 ms.

Here the two loops are pynetdicom's own, with the 1 ms sleep replaced by a wait for work:

* the DUL thread blocks in ``select`` on the socket and on a wake-up socket pair, which every
  primitive queued for it (a C-STORE response, a release, an abort) and every request to stop
  writes to;
* the association thread blocks on an ``Event`` that every DIMSE message and every primitive
  queued for it sets.

Timers (ARTIM, the network idle timeout) are still polled, now every ``IDLE_WAIT_S``: they
fire at most that much later than they would have. Only associations that our server accepts
use this (``pacs.dimse.server.HardenedRequestHandler``); associations we request keep
pynetdicom's loops. Like ``server.py`` it relies on pynetdicom internals, which is why
pynetdicom is pinned exactly.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket
from pynetdicom.utils import make_target

from pacs.dimse.quick import QuickStoreReplies

# pynetdicom's logger: the loops below log what pynetdicom's own would.
LOGGER = logging.getLogger("pynetdicom")

# How long a thread waits for work before it looks at the timers again.
IDLE_WAIT_S = 0.02


class _WakingQueue(queue.Queue[Any]):
    """A queue that calls ``wake`` after each item is added (under the queue's lock)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def _put(self, item: Any) -> None:
        super()._put(item)
        self._wake()


class ReactiveDUL(DULServiceProvider):
    """The DUL thread of an accepted association, blocked in ``select`` until there is work."""

    _wake_r: socket.socket
    _wake_w: socket.socket
    # Told when the transport connection closes (Evt17), whatever the association's state.
    _on_closed: Callable[[], None] | None = None

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the pair is full (already awake) or closed (the thread has ended)
            pass

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self.wake()
        while self.is_alive():
            time.sleep(self._run_loop_delay)
        return True

    def _wait_for_work(self) -> None:
        if self.to_provider_queue.qsize() or self.event_queue.qsize():
            return
        watched: list[Any] = [self._wake_r]
        transport = self.socket
        if transport is not None and transport.socket is not None and transport._is_connected:
            sock = transport.socket
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return  # TLS already holds decrypted bytes that select cannot see
            watched.append(sock)
        try:
            readable, _, _ = select.select(watched, [], [], IDLE_WAIT_S)
        except (OSError, ValueError):  # the socket closed under us: let the loop find out
            time.sleep(self._run_loop_delay)
            return
        if self._wake_r in readable:
            try:
                self._wake_r.recv(4096)
            except OSError:
                pass

    def run_reactor(self) -> None:
        """pynetdicom 3.0.4's ``DULServiceProvider.run_reactor``, waiting instead of sleeping."""
        try:
            self._run_reactor()
        finally:
            # The association thread notices a dead DUL at once, not at its next timer check.
            wake = getattr(self.assoc, "_wake", None)
            if wake is not None:
                wake.set()
            self._wake_r.close()
            self._wake_w.close()

    def _run_reactor(self) -> None:
        self._idle_timer.start()
        self.socket = cast(AssociationSocket, self.socket)
        sleep = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                sleep = True
            if sleep:
                self._wait_for_work()
            if self._kill_thread:
                break
            # The ARTIM timer first, so that its event is queued ahead of any other this loop.
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # Either encode and send a primitive, or receive and decode a PDU, per loop.
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                LOGGER.error("Exception in DUL.run(), aborting association")
                LOGGER.exception(exc)
                # Bypass the state machine and send an A-ABORT, as pynetdicom does.
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                sleep = True
                continue
            self.state_machine.do_action(event)
            sleep = False
            if event == "Evt17" and self._on_closed is not None:
                self._on_closed()


class Once:
    """Calls ``action`` the first time it is called, and never again."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


class ReactiveAssociation(Association):
    """An association whose acceptor loop waits on an ``Event`` instead of sleeping 1 ms.

    Associations we request (``AE.associate``) never get the event, and run pynetdicom's loop.
    """

    _wake: threading.Event | None = None
    # Told when the association's thread ends (the server's count of live connections).
    _ended: Callable[[], None] | None = None

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            if self._ended is not None:
                self._ended()

    def kill(self) -> None:
        super().kill()
        if self._wake is not None:
            self._wake.set()

    def _run_reactor(self) -> None:
        wake = self._wake
        if wake is None:
            super()._run_reactor()
            return
        messages = self.dimse.msg_queue
        primitives = self.dul.to_user_queue
        self._is_paused = False
        while not self._kill:
            wake.clear()
            if not (messages.qsize() or primitives.qsize()):
                wake.wait(IDLE_WAIT_S)
            # The acceptor's own send_*() may pause the reactor (pynetdicom's comment: the
            # received message could otherwise be taken off the queue first).
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast(int, context_id))

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                LOGGER.info(log_msg)
                self.dul.receive_pdu(wait=False)  # so that EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


def make_reactive(assoc: ReactiveAssociation) -> None:
    """Give a just-created acceptor association (its threads not yet started) the waits."""
    dul = assoc.dul
    dul.__class__ = ReactiveDUL
    reactive = cast(ReactiveDUL, dul)
    # Thread.__init__ bound pynetdicom's run_reactor as the thread's target; bind ours.
    reactive._target = make_target(reactive.run_reactor)  # type: ignore[attr-defined]
    reactive._wake_r, reactive._wake_w = socket.socketpair()
    reactive._wake_r.setblocking(False)
    reactive._wake_w.setblocking(False)
    # Likewise the association's thread, so that ReactiveAssociation.run_reactor runs.
    assoc._target = make_target(assoc.run_reactor)  # type: ignore[attr-defined]
    wake = threading.Event()
    assoc._wake = wake
    reactive.to_provider_queue = _WakingQueue(reactive.wake)
    reactive.to_user_queue = _WakingQueue(wake.set)
    assoc.dimse.msg_queue = _WakingQueue(wake.set)
    # A plain C-STORE response encoded by hand (pacs/dimse/quick.py).
    assoc.dimse.__class__ = QuickStoreReplies
