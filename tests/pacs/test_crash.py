"""SIGKILL in the middle of a 300-slice association: every instance that was answered Success
survives intact, a resend completes the study with nothing missing or duplicated, and no
object stays in the store without an index row."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.models import Instance
from pacs.storage.folder import FolderStore
from tests.conftest import receiver_env, require, spawn_receiver, storescu, storescu_until, wait_for, yunying
from tests.pacs.helpers import dataset_sha256, file_dataset_sha256, write_ct


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_association_then_resend(tmp_path: Path, data_cache: Path) -> None:
    require("storescu")
    ct = write_ct(data_cache / "ct300-256", slices=300, seed=300, size=256)
    home = tmp_path / "var"
    env = receiver_env(home, stability_seconds=3600, orphan_grace_s=0, partial_file_max_age_s=1)
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong Health Centre", "--tier", "township", "--consortium", "Dongtai", env=env)
    yunying("ae", "add", "FUDONG_CT", "--site", "Fudong Health Centre", "--address", "127.0.0.1", env=env)

    receiver = spawn_receiver(env, tmp_path / "receiver-1.log")
    acknowledged = storescu_until(receiver.port, ct, 120, receiver.kill)  # SIGKILL, mid-association
    assert len(acknowledged) == 120

    incoming = home / "objects" / ".incoming"
    # Partial temp files of the dead association are swept once they are older than 1 s.
    wait_for(lambda: all(time.time() - p.stat().st_mtime > 1.2 for p in incoming.glob("rx-*")), timeout=10)
    receiver = spawn_receiver(env, tmp_path / "receiver-2.log")
    try:
        assert list(incoming.glob("rx-*")) == [], "partial files of the killed association were not swept"
        engine = make_engine(f"sqlite:///{home / 'yunying.db'}")
        sessions = make_sessionmaker(engine)
        store = FolderStore(home / "objects")
        with transaction(sessions) as session:
            before = {i.sop_instance_uid: i for i in session.scalars(select(Instance))}
            referenced = set(session.scalars(select(Instance.object_key)))
        # Every Success before the kill is in the index and its bytes are intact.
        for path in acknowledged:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            instance = before[uid]
            data = store.get(instance.object_key)
            assert file_dataset_sha256(path) == dataset_sha256(data[instance.dataset_offset :])
        # The start-up sweep left no object without a row.
        assert {info.key for info in store.list("instances")} == referenced

        ok, failed, output = storescu(receiver.port, ct, timeout=240)
        assert (ok, failed) == (300, 0), output[-2000:]
        with transaction(sessions) as session:
            rows = session.execute(
                select(Instance.sop_instance_uid, func.count()).group_by(Instance.sop_instance_uid)
            ).all()
            instances = list(session.scalars(select(Instance)))
        assert len(rows) == 300 and all(count == 1 for _, count in rows), "an instance is missing or duplicated"
        by_uid = {i.sop_instance_uid: i for i in instances}
        for path in ct:
            instance = by_uid[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)]
            assert file_dataset_sha256(path) == dataset_sha256(
                store.get(instance.object_key)[instance.dataset_offset :]
            )
        assert {info.key for info in store.list("instances")} == {i.object_key for i in instances}
        engine.dispose()
    finally:
        receiver.stop()
