"""The receiver under attack: each test hits a running receiver on loopback with raw sockets or
pynetdicom, checks the hardening held (pacs/dimse/server.py, pacs/dimse/store_scp.py,
pacs/dimse/contexts.py), and then checks that a legitimate C-ECHO and C-STORE still succeed.

The receiver runs in this process (conftest's ``start_receiver``), so its memory is this
process's memory and its accepted sockets can be inspected directly.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from pacs.dimse.reactor import IDLE_WAIT_S, ReactiveDUL
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)

CALLED = "YUNYING"
SITE_AE = "FUDONG_CT"
CT_SMALL = str(get_testdata_file("CT_small.dcm"))
STORED = "instance.stored"
REJECTED = "association.rejected"

# PS3.8 9.3.1: PDU type, reserved byte, 4-byte big-endian length.
A_ASSOCIATE_RQ = 0x01
P_DATA_TF = 0x04


def pdu_header(pdu_type: int, length: int) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, length)


# ---------------------------------------------------------------- legitimate traffic


def ct_dataset() -> Dataset:
    """pydicom's CT_small with fresh UIDs, so each store is a new instance."""
    ds = dcmread(CT_SMALL)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def requestor(calling: str = SITE_AE, transfer_syntaxes: list[str] | None = None) -> AE:
    ae = AE(ae_title=calling)
    ae.acse_timeout = 5
    ae.dimse_timeout = 10
    ae.network_timeout = 10
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, transfer_syntaxes or [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def associate(fixture: Any, ae: AE | None = None, *, called: str = CALLED, **kwargs: Any) -> Association:
    return (ae or requestor()).associate("127.0.0.1", fixture.port, ae_title=called, **kwargs)


def establish(fixture: Any, timeout: float = 10.0) -> Association:
    """An established association, retrying while the receiver refuses (it may still be freeing
    the slots of an attack)."""

    def attempt() -> Association | None:
        assoc = associate(fixture)
        if assoc.is_established:
            return assoc
        assoc.abort()
        return None

    return wait_for(attempt, timeout=timeout, interval=0.1)  # type: ignore[no-any-return]


def rejection(assoc: Association) -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ the receiver answered."""
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert rj is not None
    return int(rj.result or 0), int(rj.result_source or 0), int(rj.diagnostic or 0)


def status_of(response: Any) -> int | None:
    return int(response.Status) if response is not None and "Status" in response else None


def stored_uids(fixture: Any) -> set[str]:
    return {change.payload.get("sop_instance_uid") for change in fixture.changes(STORED)}


def assert_still_serves(fixture: Any, timeout: float = 10.0) -> None:
    """A legitimate C-ECHO and C-STORE from the site AE succeed (status 0x0000) within ``timeout``."""
    assoc = establish(fixture, timeout)
    try:
        assert status_of(assoc.send_c_echo()) == 0x0000
    finally:
        assoc.release()
    ds = ct_dataset()
    assoc = establish(fixture, timeout)
    try:
        assert status_of(assoc.send_c_store(ds)) == 0x0000
    finally:
        assoc.release()
    assert str(ds.SOPInstanceUID) in stored_uids(fixture)


# ---------------------------------------------------------------- raw sockets and memory


def raw_connect(fixture: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", fixture.port), timeout=5)


def seconds_until_closed(sock: socket.socket, timeout: float) -> float:
    """Read (and discard: an A-ABORT, an A-ASSOCIATE-RJ) until the server closes ``sock``;
    return the seconds that took. Fails if it is still open after ``timeout``."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < timeout:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:  # reset by the server
            return time.monotonic() - start
    raise AssertionError(f"the receiver kept the connection open for {timeout} s")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert match, field
    return int(match.group(1))


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Yields a list that holds, once the block ends, the peak growth of this process's resident
    memory in bytes during the block (the receiver runs in this process)."""
    result: list[int] = []
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM, the peak, to the current RSS
        hwm = True
    except OSError:
        hwm = False
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _status_kib("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        top = max(peak[0], _status_kib("VmHWM") if hwm else 0, _status_kib("VmRSS"))
        result.append((top - before) * 1024)


def raw_socket_of(assoc: Association) -> socket.socket:
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    assert sock is not None
    return sock


# ---------------------------------------------------------------- 1. silent sockets


def test_silent_sockets_free_their_slots(start_receiver: Callable[..., Any]) -> None:
    # One association per address as well: the legitimate association refused below for the
    # global cap was first admitted per address, and must give that slot back.
    fixture = start_receiver(max_associations=3, max_associations_per_address=1)
    idle = fixture.settings.socket_idle_timeout_s
    silent = [raw_connect(fixture) for _ in range(5)]
    try:
        # Three send part of an A-ASSOCIATE-RQ (a header declaring 200 bytes, and 4 of them)
        # and go silent; two send nothing at all.
        for sock in silent[:3]:
            sock.sendall(pdu_header(A_ASSOCIATE_RQ, 200) + b"\x00\x01\x00\x00")
        # All the receiver's slots are held for now: a legitimate association is refused.
        wait_for(lambda: len(fixture.receiver.ae.active_associations) >= 3, timeout=5)
        refused = associate(fixture)
        assert refused.is_rejected
        assert rejection(refused) == (0x02, 0x03, 0x02)
        # ... but only until the idle timeout (and the ACSE timeout) frees them.
        assert_still_serves(fixture, timeout=idle + 6)
        for sock in silent:  # the server, not the peer, closed every one
            seconds_until_closed(sock, timeout=5)
    finally:
        for sock in silent:
            sock.close()


# ---------------------------------------------------------------- 2. oversized PDUs


def test_oversized_associate_rq_is_refused_unbuffered(start_receiver: Callable[..., Any]) -> None:
    fixture = start_receiver()
    with peak_rss_growth() as growth:
        with raw_connect(fixture) as sock:
            sock.sendall(pdu_header(A_ASSOCIATE_RQ, 2**31) + b"\x00\x01" + bytes(64 * 1024))
            # Dropped at the header: the receiver neither waits for nor reserves 2 GiB.
            seconds_until_closed(sock, timeout=fixture.settings.acse_timeout_s + 3)
    assert growth[0] < 50 * 1024**2, f"resident memory grew by {growth[0] / 1024**2:.0f} MB"
    assert_still_serves(fixture)


def test_oversized_p_data_in_an_association_is_refused_unbuffered(start_receiver: Callable[..., Any]) -> None:
    # One association per address: serving again afterwards also proves the aborted
    # association gave its per-address slot back.
    fixture = start_receiver(max_associations_per_address=1)
    assoc = establish(fixture)
    sock = raw_socket_of(assoc)
    try:
        with peak_rss_growth() as growth:
            sock.sendall(pdu_header(P_DATA_TF, 200 * 1024**2) + bytes(256 * 1024))
            wait_for(lambda: not assoc.is_alive(), timeout=5)
        assert assoc.is_aborted
        assert growth[0] < 50 * 1024**2, f"resident memory grew by {growth[0] / 1024**2:.0f} MB"
    finally:
        if assoc.is_alive():
            assoc.abort()
        sock.close()  # pynetdicom shuts a socket the peer aborted down, but never closes it
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 3. slowloris


def trickle_until_closed(sock: socket.socket, limit: float, interval: float = 0.5) -> float:
    """Send one byte every ``interval`` until the server closes ``sock``; the seconds that took."""
    start = time.monotonic()
    sock.settimeout(interval)
    while time.monotonic() - start < limit:
        try:
            sock.send(b"\x00")
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    raise AssertionError(f"a peer trickling a byte every {interval} s held the connection for {limit} s")


def test_slowloris_associate_rq_is_cut_by_the_pdu_deadline(start_receiver: Callable[..., Any]) -> None:
    fixture = start_receiver()
    deadline = fixture.settings.pdu_deadline_s
    with raw_connect(fixture) as sock:
        sock.sendall(pdu_header(A_ASSOCIATE_RQ, 1000))  # 1000 bytes at 2 a second: 500 s
        took = trickle_until_closed(sock, limit=deadline + 3)
    # Each byte arrived well within the idle timeout: the deadline, not the idle timeout, cut it.
    assert took > fixture.settings.socket_idle_timeout_s
    assert_still_serves(fixture)


def test_slowloris_p_data_is_cut_by_the_pdu_deadline(start_receiver: Callable[..., Any]) -> None:
    fixture = start_receiver(max_associations_per_address=1)
    deadline = fixture.settings.pdu_deadline_s
    assoc = establish(fixture)
    sock = raw_socket_of(assoc)
    try:
        sock.sendall(pdu_header(P_DATA_TF, 1000))
        start = time.monotonic()
        while assoc.is_alive():
            assert time.monotonic() - start < deadline + 3, "the trickled P-DATA-TF was not cut off"
            with suppress(OSError):
                sock.send(b"\x00")
            time.sleep(0.5)
        assert assoc.is_aborted
    finally:
        if assoc.is_alive():
            assoc.abort()
        sock.close()
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 4. per-address cap


def test_per_address_cap_rejects_transiently(start_receiver: Callable[..., Any]) -> None:
    fixture = start_receiver(max_associations_per_address=2)
    held = [establish(fixture), establish(fixture)]
    try:
        third = associate(fixture)
        assert third.is_rejected
        assert rejection(third) == (0x02, 0x03, 0x02)
        held.pop().release()
        fresh = establish(fixture)  # the released slot is free again
        assert status_of(fresh.send_c_echo()) == 0x0000
        held.append(fresh)
    finally:
        for assoc in held:
            assoc.release()
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 5. per-association limits


def test_instance_limit_per_association(start_receiver: Callable[..., Any]) -> None:
    fixture = start_receiver(max_instances_per_association=3)
    datasets = [ct_dataset() for _ in range(4)]
    assoc = establish(fixture)
    try:
        statuses = [status_of(assoc.send_c_store(ds)) for ds in datasets]
    finally:
        assoc.release()
    assert statuses == [0x0000, 0x0000, 0x0000, 0xA700]
    assert str(datasets[3].SOPInstanceUID) not in stored_uids(fixture)
    assert_still_serves(fixture)  # a new association stores again


def test_byte_limit_per_association(start_receiver: Callable[..., Any]) -> None:
    size = os.path.getsize(CT_SMALL)
    fixture = start_receiver(max_bytes_per_association=int(size * 1.5))
    datasets = [ct_dataset() for _ in range(2)]
    assoc = establish(fixture)
    try:
        statuses = [status_of(assoc.send_c_store(ds)) for ds in datasets]
    finally:
        assoc.release()
    assert statuses == [0x0000, 0xA700]
    assert str(datasets[1].SOPInstanceUID) not in stored_uids(fixture)
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 6. deflated transfer syntax


def test_deflated_transfer_syntax_is_refused(start_receiver: Callable[..., Any]) -> None:
    fixture = start_receiver()
    # CT Image Storage offered only as Deflated Explicit VR LE, beside Verification.
    assoc = associate(fixture, requestor(transfer_syntaxes=[DeflatedExplicitVRLittleEndian]))
    try:
        assert assoc.is_established
        assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [Verification]
        refused = [cx for cx in assoc.rejected_contexts if cx.abstract_syntax == CTImageStorage]
        assert len(refused) == 1 and refused[0].result == 0x04  # transfer syntaxes not supported
        ds = ct_dataset()
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        with pytest.raises(ValueError):
            assoc.send_c_store(ds)
    finally:
        assoc.release()
    # Offered alone, there is nothing usable to associate for.
    ae = AE(ae_title=SITE_AE)
    ae.acse_timeout = 5
    ae.add_requested_context(CTImageStorage, [DeflatedExplicitVRLittleEndian])
    alone = associate(fixture, ae)
    assert not alone.is_established
    assert [cx.result for cx in alone.rejected_contexts] == [0x04]
    assert fixture.changes(STORED) == []
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 7. admission


@pytest.mark.parametrize(
    ("calling", "called", "bind", "expected"),
    [
        (SITE_AE, "NOT_YUNYING", "127.0.0.1", (0x01, 0x01, 0x07)),
        ("INTRUDER", CALLED, "127.0.0.1", (0x01, 0x01, 0x03)),
        (SITE_AE, CALLED, "127.0.0.2", (0x01, 0x01, 0x03)),  # the site AE, from a wrong address
    ],
    ids=["wrong-called-ae", "wrong-calling-ae", "wrong-source-address"],
)
def test_admission_rejects(
    start_receiver: Callable[..., Any], calling: str, called: str, bind: str, expected: tuple[int, int, int]
) -> None:
    fixture = start_receiver()
    ae = requestor(calling)
    assoc = associate(fixture, ae, called=called, bind_address=(bind, 0))
    assert assoc.is_rejected
    assert rejection(assoc) == expected
    changes = wait_for(lambda: fixture.changes(REJECTED), timeout=5)
    assert len(changes) == 1
    payload = changes[0].payload
    assert (payload["calling_ae"], payload["source"]) == (calling, bind)
    assert (payload["result"], payload["diagnostic"]) == (expected[0], expected[2])
    assert fixture.changes(STORED) == []
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 8. TCP_NODELAY


def test_accepted_sockets_have_nodelay_and_idle_timeout(start_receiver: Callable[..., Any]) -> None:
    # Checked on the receiver's side of the connection. (A timing check would not show Nagle
    # here: each response the receiver sends is a single PDU written in one call.)
    fixture = start_receiver()
    assoc = establish(fixture)
    raw = raw_connect(fixture)  # accepted too, though it never associates
    try:

        def server_sockets() -> list[socket.socket] | None:
            found = [a.dul.socket.socket for a in fixture.receiver.ae.active_associations if a.dul.socket]
            return found if len(found) == 2 and all(found) else None

        for server_side in wait_for(server_sockets, timeout=5):
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert server_side.gettimeout() == fixture.settings.socket_idle_timeout_s
        assert status_of(assoc.send_c_echo()) == 0x0000
    finally:
        raw.close()
        assoc.release()
    assert_still_serves(fixture)


# ---------------------------------------------------------------- 9. no polling


def voluntary_switches(thread: threading.Thread) -> int:
    """How often the kernel has seen ``thread`` give up the CPU: once per sleep or wait."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    match = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def test_an_idle_association_waits_instead_of_polling(start_receiver: Callable[..., Any]) -> None:
    # pynetdicom's own loops sleep 1 ms and look again: about 1000 wake-ups a second for each
    # of an association's two threads, every one taking the GIL from the handlers
    # (pacs/dimse/reactor.py). Ours wait for work, looking at the timers every IDLE_WAIT_S.
    fixture = start_receiver()
    assoc = establish(fixture)
    try:
        (accepted,) = wait_for(lambda: fixture.receiver.ae.active_associations or None, timeout=5)
        assert isinstance(accepted.dul, ReactiveDUL)
        threads = [accepted, accepted.dul]
        wait_for(lambda: all(t.native_id for t in threads) or None, timeout=5)
        before = [voluntary_switches(t) for t in threads]
        window_s = 0.5
        time.sleep(window_s)
        woken = [voluntary_switches(t) - b for t, b in zip(threads, before, strict=True)]
        # 25 wake-ups each in 0.5 s at IDLE_WAIT_S = 20 ms; polling would be ~500.
        assert all(count <= 3 * window_s / IDLE_WAIT_S for count in woken), woken
        assert status_of(assoc.send_c_echo()) == 0x0000
    finally:
        assoc.release()
    assert wait_for(lambda: not fixture.receiver.ae.active_associations or None, timeout=5)
    assert_still_serves(fixture)
