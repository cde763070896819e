"""Faults in the production topology (issue G), each with "nothing that got Success is lost,
nothing half-visible, the service recovers by itself":

* one of two receivers behind HAProxy is SIGKILLed mid-association — the sender's retry goes
  through HAProxy to the survivor and completes the study;
* the folder store on a small, nearly full tmpfs — instances that do not fit are answered
  0xA700 (out of resources), nothing corrupt is kept, and once space is freed a resend completes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.models import Instance
from pacs.integrity import verify_store
from pacs.storage.folder import FolderStore
from tests.conftest import free_port, receiver_env, require, spawn_receiver, storescu, storescu_until, wait_for, yunying
from tests.pacs.helpers import dataset_sha256, file_dataset_sha256, write_ct

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _setup(home: Path, **settings: object) -> dict[str, str]:
    env = receiver_env(home, stability_seconds=3600, orphan_grace_s=0, partial_file_max_age_s=1, **settings)
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong Health Centre", "--tier", "township", "--consortium", "Dongtai", env=env)
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong Health Centre", "--address", "127.0.0.1", env=env)
    return env


def _check_all_intact(home: Path, files: list[Path]) -> None:
    engine = make_engine(f"sqlite:///{home / 'yunying.db'}")
    try:
        sessions = make_sessionmaker(engine)
        store = FolderStore(home / "objects")
        with transaction(sessions) as session:
            counts = session.execute(
                select(Instance.sop_instance_uid, func.count()).group_by(Instance.sop_instance_uid)
            ).all()
            instances = {i.sop_instance_uid: i for i in session.scalars(select(Instance))}
        assert len(counts) == len(files) and all(n == 1 for _, n in counts), "missing or duplicated instances"
        for path in files:
            instance = instances[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)]
            data = store.get(instance.object_key)
            assert file_dataset_sha256(path) == dataset_sha256(data[instance.dataset_offset :])
        assert verify_store(store, sessions, orphan_grace=timedelta(0)).ok
    finally:
        engine.dispose()


@pytest.fixture
def haproxy_path() -> str:
    found = shutil.which("haproxy")
    if found is None:
        pytest.fail("haproxy is needed: apt-get install haproxy")
    return found


def test_a_receiver_killed_behind_haproxy_the_retry_completes_on_the_other(
    haproxy_path: str, tmp_path: Path, data_cache: Path
) -> None:
    require("storescu")
    ct = write_ct(data_cache / "ct300-256", slices=300, seed=300, size=256)
    home = tmp_path / "var"
    env = _setup(home, dicom_proxy_from='["127.0.0.1"]')
    first = spawn_receiver(env, tmp_path / "receiver-1.log")
    second = spawn_receiver({**env, "YUNYING_ORPHAN_GRACE_S": "600"}, tmp_path / "receiver-2.log", "--no-stability")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"""defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
frontend dicom
    bind 127.0.0.1:{port}
    default_backend receivers
backend receivers
    balance first
    server r1 127.0.0.1:{first.port} send-proxy-v2 check inter 500 fall 1 rise 1
    server r2 127.0.0.1:{second.port} send-proxy-v2 check inter 500 fall 1 rise 1
"""
    )
    log = (tmp_path / "haproxy.log").open("wb")
    balancer = subprocess.Popen([haproxy_path, "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(up, timeout=10)
        # "balance first": the study goes to r1, which dies after 120 Success answers.
        acknowledged = storescu_until(port, ct, 120, first.kill)
        assert len(acknowledged) == 120
        # The technologist (or the modality's retry) sends the study again, through HAProxy.
        ok, failed, output = storescu(port, ct, timeout=240)
        assert (ok, failed) == (300, 0), output[-2000:]
        _check_all_intact(home, ct)
    finally:
        balancer.terminate()
        balancer.wait(10)
        log.close()
        second.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs for the object store (mounting needs root: CI and this machine run as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (this test needs root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_folder_store_answers_out_of_resources_and_keeps_nothing_corrupt(
    small_disk: Path, tmp_path: Path, data_cache: Path
) -> None:
    require("storescu")
    ct = write_ct(data_cache / "ct40-256", slices=40, seed=401, size=256)  # 40 × 132 kB: more than fits
    home = tmp_path / "var"
    env = _setup(home, storage_path=small_disk / "objects")
    filler = small_disk / "filler.bin"
    filler.write_bytes(b"\0" * (3 * 1024 * 1024))  # the disk is half full before the study comes
    receiver = spawn_receiver(env, tmp_path / "receiver.log")
    try:
        ok, failed, output = storescu(receiver.port, ct, timeout=120)
        assert failed > 0 and ok + failed <= len(ct), output[-1500:]
        assert "Refused: OutOfResources" in output, output[-1500:]  # 0xA700, the association kept
        # What got Success is intact; what did not left nothing behind.
        engine = make_engine(f"sqlite:///{home / 'yunying.db'}")
        sessions = make_sessionmaker(engine)
        store = FolderStore(small_disk / "objects")
        result = verify_store(store, sessions, orphan_grace=timedelta(0))
        engine.dispose()
        assert result.ok, [str(f) for f in result.findings]
        assert result.objects_checked == ok
        # Space comes back (the filler deleted): the resend completes the study.
        filler.unlink()
        ok, failed, output = storescu(receiver.port, ct, timeout=120)
        assert (ok, failed) == (len(ct), 0), output[-1500:]
    finally:
        receiver.stop()
    engine = make_engine(f"sqlite:///{home / 'yunying.db'}")
    try:
        with transaction(make_sessionmaker(engine)) as session:
            assert session.scalar(select(func.count()).select_from(Instance)) == len(ct)
    finally:
        engine.dispose()
