"""``yunying receiver --processes N`` (pacs/receiver_processes.py, pacs/dimse/balance.py): a
light supervisor, N workers accepting from one listening socket, each new association going to
the worker that holds the fewest, and a worker that dies started again. Driven as a user runs
it: the real command, pynetdicom and storescu as senders, /proc to see which process holds
which connection."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.conftest import ReceiverProcess, receiver_env, require, spawn_receiver, storescu, wait_for, yunying
from tests.pacs.helpers import write_ct

pytestmark = pytest.mark.timeout(120)

READY = "receiver processes listening"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = receiver_env(tmp_path / "var", stability_seconds=60)
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "Dongtai", env=env)
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1", env=env)
    return env


@pytest.fixture
def two_workers(env: dict[str, str], tmp_path: Path) -> Iterator[ReceiverProcess]:
    receiver = spawn_receiver(env, tmp_path / "receiver.log", "--processes", "2")
    try:
        wait_for(lambda: READY in receiver.log.read_text(errors="replace") or None, timeout=60)
        yield receiver
    finally:
        receiver.stop()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def workers(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return sorted(int(pid) for pid in children if "spawn_main" in cmdline(int(pid)))


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


def age_s(pid: int) -> float:
    started_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    return uptime_s - started_ticks / os.sysconf("SC_CLK_TCK")


def held_connections(pid: int, port: int) -> int:
    """Established TCP connections on ``port`` (the receiver's side) whose socket ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def associate(port: int) -> Association:
    ae = AE(ae_title="FUDONG_CT")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="YUNYING")
    assert assoc.is_established, "association not established"
    return assoc


@contextmanager
def associations(port: int, count: int) -> Iterator[list[Association]]:
    """``count`` associations opened one after another, held open, released at the end."""
    held = [associate(port) for _ in range(count)]
    try:
        yield held
    finally:
        for assoc in held:
            assoc.release()


def spread(pids: list[int], port: int) -> list[int]:
    """How many connections each worker holds, fewest first."""
    return sorted(held_connections(pid, port) for pid in pids)


def test_the_supervisor_is_light_and_associations_are_spread_evenly(two_workers: ReceiverProcess) -> None:
    supervisor = two_workers.process.pid
    pids = workers(supervisor)
    assert len(pids) == 2, pids
    # It replaced the `yunying` process (same PID) and imported none of the service.
    assert "pacs.receiver_processes" in cmdline(supervisor)
    assert rss_mb(supervisor) < 40, rss_mb(supervisor)
    # Nor do the workers load what a folder store without a TLS port never uses (~16 MB each,
    # docs/performance.md section 8): minio (its pycryptodome ciphers) and cryptography (pacs.pki).
    for pid in pids:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "/Crypto/Cipher/" not in maps and "/cryptography/hazmat/" not in maps, pid

    with associations(two_workers.port, 4) as held:
        split = spread(pids, two_workers.port)
        assert split == [2, 2], split  # the kernel's SO_REUSEPORT hash gave 3/1 or 4/0 in most runs
        assert all(int(assoc.send_c_echo().Status) == 0 for assoc in held)
    # A connection stops counting when it closes: the next two associations go one to each
    # worker again.
    wait_for(lambda: all(held_connections(pid, two_workers.port) == 0 for pid in pids) or None, timeout=10)
    with associations(two_workers.port, 2):
        assert spread(pids, two_workers.port) == [1, 1]


def test_a_worker_that_dies_is_started_again(two_workers: ReceiverProcess, tmp_path: Path) -> None:
    require("storescu")
    supervisor = two_workers.process.pid
    pids = workers(supervisor)
    busy = associate(two_workers.port)
    try:
        (idle,) = [pid for pid in pids if held_connections(pid, two_workers.port) == 0]
        # The supervisor gives up on a worker that dies within 5 s of its start (a configuration
        # error, not a crash): let this one live longer than that.
        time.sleep(max(0.0, 5.5 - age_s(idle)))
        os.kill(idle, signal.SIGKILL)
        # The busy worker does not leave new connections to the dead one: they are served.
        files = write_ct(tmp_path / "ct", slices=3, seed=4, size=32, kind="head")
        ok, failed, output = storescu(two_workers.port, files)
        assert (ok, failed) == (3, 0), output
        assert int(busy.send_c_echo().Status) == 0
    finally:
        busy.release()
    wait_for(lambda: "starting it again" in two_workers.log.read_text(errors="replace") or None, timeout=30)

    def replaced_worker() -> list[int] | None:
        found = workers(supervisor)
        return found if len(found) == 2 and idle not in found else None

    replaced = wait_for(replaced_worker, timeout=60)
    assert two_workers.process.poll() is None
    # The new worker takes its share once it listens.
    (new,) = set(replaced) - set(pids)
    wait_for(lambda: f"pid={new}" in two_workers.log.read_text(errors="replace") or None, timeout=60)
    (kept,) = set(replaced) & set(pids)
    wait_for(lambda: held_connections(kept, two_workers.port) == 0 or None, timeout=10)
    with associations(two_workers.port, 2):
        assert spread(replaced, two_workers.port) == [1, 1]
