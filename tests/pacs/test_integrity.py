"""``yunying verify`` (issue G): after studies arrive by C-STORE, the index and the store agree;
then a deleted object, a truncated one, a flipped byte and an orphan are each named — on SQLite
with a folder and on PostgreSQL with S3 — and orphans can be moved aside, never deleted."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from pacs.index.db import transaction
from pacs.index.models import Instance, Quarantine
from pacs.integrity import verify_store
from tests.conftest import BACKENDS, Fixture, receiver_env, require, storescu, yunying
from tests.pacs.helpers import write_ct

on_both = pytest.mark.parametrize("backend", BACKENDS)


def _received(receiver: Fixture, folder: Path, seed: int = 5) -> list[Instance]:
    require("storescu")
    files = write_ct(folder, slices=4, seed=seed, size=64, kind="head")
    ok, failed, output = storescu(receiver.port, files)
    assert (ok, failed) == (4, 0), output
    with transaction(receiver.services.sessions) as session:
        rows = list(session.scalars(select(Instance).order_by(Instance.id)))
        session.expunge_all()
    return rows


def _rewrite(receiver: Fixture, key: str, data: bytes, tmp_path: Path) -> None:
    """Replace an object's bytes behind the index's back (the folder store keeps an existing
    object of the same size, so delete it first)."""
    scratch = tmp_path / "scratch.bin"
    scratch.unlink(missing_ok=True)
    scratch.write_bytes(data)
    if receiver.services.store.exists(key):
        receiver.services.store.delete(key)
    receiver.services.store.put_file(key, scratch)


@on_both
def test_verify_names_every_disagreement_between_index_and_store(
    start_receiver: Callable[..., Fixture], backend: str, tmp_path: Path
) -> None:
    receiver = start_receiver(backend, orphan_grace_s=0)
    instances = _received(receiver, tmp_path / "ct")
    store, sessions = receiver.services.store, receiver.services.sessions
    clean = verify_store(store, sessions, orphan_grace=timedelta(0))
    assert clean.ok and clean.objects_checked == 4 and clean.objects_listed == 4 and clean.findings == []

    missing, short, flipped = instances[0], instances[1], instances[2]
    store.delete(missing.object_key)
    original = store.get(short.object_key)
    _rewrite(receiver, short.object_key, original[:-100], tmp_path)
    body = bytearray(store.get(flipped.object_key))
    body[-1] ^= 0xFF  # one bit of one pixel
    _rewrite(receiver, flipped.object_key, bytes(body), tmp_path)
    _rewrite(receiver, "instances/2026/12/03/stray.dcm", original, tmp_path)

    found = verify_store(store, sessions, orphan_grace=timedelta(0))
    assert not found.ok
    kinds = {(f.kind, f.object_key, f.row) for f in found.findings}
    assert kinds == {
        ("missing", missing.object_key, f"instance {missing.id}"),
        ("truncated", short.object_key, f"instance {short.id}"),
        ("altered", flipped.object_key, f"instance {flipped.id}"),
        ("orphan", "instances/2026/12/03/stray.dcm", None),
    }
    # A young object is not an orphan yet: its ingest may be about to commit its row.
    young = verify_store(store, sessions, orphan_grace=timedelta(hours=1))
    assert young.count("orphan") == 0

    moved = verify_store(store, sessions, orphan_grace=timedelta(0), quarantine_orphans=True)
    assert moved.quarantined == ["instances/2026/12/03/stray.dcm"]
    assert not store.exists("instances/2026/12/03/stray.dcm")
    assert store.get("orphaned/instances/2026/12/03/stray.dcm") == original
    with transaction(sessions) as session:
        row = session.scalars(select(Quarantine).where(Quarantine.reason_code == "orphan")).one()
        assert row.object_key == "orphaned/instances/2026/12/03/stray.dcm" and row.size == len(original)
    after = verify_store(store, sessions, orphan_grace=timedelta(0))
    assert {f.kind for f in after.findings} == {"missing", "truncated", "altered"}  # the orphan is indexed now


def test_yunying_verify_exits_1_and_reports_json(start_receiver: Callable[..., Fixture], tmp_path: Path) -> None:
    receiver = start_receiver(orphan_grace_s=0)
    instances = _received(receiver, tmp_path / "ct")
    env = receiver_env(receiver.services.settings.home, orphan_grace_s=0)
    good = yunying("verify", env=env)
    assert "4 indexed object(s) checked" in good.stdout and "0 missing" in good.stdout
    receiver.services.store.delete(instances[3].object_key)
    bad = yunying("verify", "--json", env=env, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    lines = [json.loads(line) for line in bad.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {
        "kind": "missing",
        "object_key": instances[3].object_key,
        "row": f"instance {instances[3].id}",
        "detail": "the index names it, the store does not have it",
        "quarantined": False,
    }
    assert lines[-1]["ok"] is False
