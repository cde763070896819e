"""The storage contract every backend satisfies (after Orthanc's ``IStorageArea``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


class StoreUnavailable(Exception):
    """The object store cannot be reached or refused the operation; the caller may retry later."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


def object_key(prefix: str, suffix: str = ".dcm") -> str:
    """A fresh server-generated key, never a UID or a name a sender chose. Random, so it can be
    chosen before the content is read — the ingest writes the object while it inspects it —
    and owned by the one ingest that wrote it, which can delete it again without racing
    another ingest of the same bytes (the index, not the key, de-duplicates)."""
    token = uuid.uuid4().hex
    # One level of 256 folders: the folder store creates them once. With two levels (65,536
    # folders) nearly every object of a young store made a folder of its own — measured 1.2 new
    # folders an image over a fresh 1,200-image store, each an inode, a block and an fsync more
    # — and a store fills all of them only after some 700,000 objects.
    return f"{prefix}/{token[:2]}/{token}{suffix}"


@runtime_checkable
class BlobStore(Protocol):
    """Where object bytes live. Every method raises ``StoreUnavailable`` when the store is down."""

    def put_file(self, key: str, path: Path) -> None:
        """Make the file at ``path`` durable under ``key``; on return it survives a crash.

        The caller keeps ownership of ``path``; a backend may hard-link it instead of copying.
        """

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, start: int, length: int) -> bytes: ...

    def open_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...
