"""The BlobStore contract, on the folder backend and on S3 (moto on loopback)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from pacs.storage import BlobStore, StoreUnavailable, object_key
from pacs.storage.folder import FolderStore
from pacs.storage.s3 import S3Store


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "folder":
        return FolderStore(tmp_path / "objects")
    request.applymarker(pytest.mark.postgres)
    moto = request.getfixturevalue("moto_server")
    s3 = S3Store(
        moto.endpoint, "test", "test", f"b-{uuid.uuid4().hex[:10]}", connect_timeout_s=1, read_timeout_s=2, retries=0
    )
    s3.ensure_bucket()
    return s3


def test_contract(store: BlobStore, tmp_path: Path) -> None:
    assert isinstance(store, BlobStore)
    source = tmp_path / "payload.bin"
    payload = bytes(range(256)) * 4096  # 1 MiB
    source.write_bytes(payload)
    key = object_key("instances")
    assert re.fullmatch(r"instances/([0-9a-f]{2})/\1[0-9a-f]{30}\.dcm", key), key
    assert object_key("instances") != key  # each ingest owns its key

    assert not store.exists(key)
    store.put_file(key, source)
    source.unlink()  # the store keeps its own copy (folder: a hard link)
    assert store.exists(key)
    assert store.get(key) == payload
    assert store.get_range(key, 1000, 10) == payload[1000:1010]
    assert b"".join(store.open_stream(key, chunk_size=100_000)) == payload
    listed = list(store.list("instances"))
    assert [(info.key, info.size) for info in listed] == [(key, len(payload))]
    assert listed[0].modified.tzinfo is not None
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get(key)
    store.delete(key)  # deleting twice is harmless


def test_folder_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "objects")
    with pytest.raises(ValueError, match="escapes"):
        store.get("../../etc/passwd")


def test_folder_hides_temp_and_incoming_files(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "objects")
    (tmp_path / "objects" / ".incoming").mkdir()
    (tmp_path / "objects" / ".incoming" / "rx-1.dcm").write_bytes(b"x")
    assert list(store.list("")) == []


@pytest.mark.postgres
@pytest.mark.timeout(30)
def test_s3_frozen_fails_fast(moto_server, tmp_path: Path) -> None:
    s3 = S3Store(
        moto_server.endpoint,
        "test",
        "test",
        f"b-{uuid.uuid4().hex[:10]}",
        connect_timeout_s=1,
        read_timeout_s=2,
        retries=0,
    )
    s3.ensure_bucket()
    source = tmp_path / "x"
    source.write_bytes(b"x" * 1000)
    moto_server.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            s3.put_file("instances/x", source)
        assert time.monotonic() - started < 6
    finally:
        moto_server.thaw()
    s3.put_file("instances/x", source)
    assert s3.get("instances/x") == b"x" * 1000


def test_s3_unreachable_is_store_unavailable() -> None:
    s3 = S3Store("127.0.0.1:9", "k", "s", "bucket", connect_timeout_s=0.5, retries=0)
    with pytest.raises(StoreUnavailable):
        s3.ensure_bucket()


def test_folder_makes_each_new_folder_durable_in_its_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An fsync of the folder holding an object keeps the object's entry, not the entry of that
    folder in its own parent: a folder the store creates is synced into its parent as well."""
    from pacs.storage import folder as folder_module

    synced: list[Path] = []
    real = folder_module.fsync_directory

    def recording(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    monkeypatch.setattr(folder_module, "fsync_directory", recording)
    store = FolderStore(tmp_path / "objects")
    root = tmp_path.joinpath("objects").resolve()
    assert synced == [root.parent]  # the store's own root, made on first use
    synced.clear()
    source = tmp_path / "payload.bin"
    source.write_bytes(b"x" * 1000)
    key = "instances/ab/ab0123.dcm"
    store.put_file(key, source)
    assert synced == [root, root / "instances", root / "instances/ab"]  # two folders made, then the object
    synced.clear()
    store.put_file("instances/ab/ab4567.dcm", source)
    assert synced == [root / "instances/ab"]  # the folders exist: only the object's entry
    assert store.get(key) == b"x" * 1000
