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


def object_key(prefix: str, sha256_hex: str, suffix: str = ".dcm") -> str:
    """A server-generated key: the content hash plus a random part, never a UID or a name a
    sender chose. The random part makes every key owned by the one ingest that wrote it, so an
    ingest that fails to index can delete its object without racing another ingest of the
    same bytes (the index, not the key, de-duplicates)."""
    return f"{prefix}/{sha256_hex[:2]}/{sha256_hex[2:4]}/{sha256_hex}-{uuid.uuid4().hex[:12]}{suffix}"


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
