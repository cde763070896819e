"""A folder on disk as the object store of the embedded default."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pacs.storage.base import ObjectInfo, StoreUnavailable


def fsync_directory(path: Path) -> None:
    """Make a rename or link inside ``path`` durable (POSIX: the entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderStore:
    """Objects as files under one root; writes are temp file → fsync → link/rename → fsync dir."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._make_folders(self.root)
        self._inside = os.path.join(self.root, "")

    def _path(self, key: str) -> Path:
        # Lexical, not Path.resolve(): the keys are the server's own, and resolving walked every
        # component of the path with a system call (~40 µs an object).
        path = os.path.normpath(os.path.join(self.root, key))
        if not path.startswith(self._inside):
            raise ValueError(f"object key escapes the store: {key!r}")
        return Path(path)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # Same filesystem (the receiver writes under root/.incoming): no copy.
                self._link(path, target)
            except FileExistsError:
                # Keys are random and owned by one ingest: an existing object is this one's,
                # written before a crash — unless torn; compare sizes and replace if so.
                if target.stat().st_size == path.stat().st_size:
                    return
                self._copy_replace(path, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                # _link made the folder already: the kernel looks the target's folder up (ENOENT)
                # before it compares file systems or asks the file system to link.
                self._copy_replace(path, target)
            fsync_directory(target.parent)
        except OSError as exc:
            raise StoreUnavailable(f"folder store {self.root}: {exc}") from exc

    def _link(self, path: Path, target: Path) -> None:
        try:
            os.link(path, target)
        except FileNotFoundError:
            if not os.path.exists(path):
                raise
            self._make_folders(target.parent)
            os.link(path, target)

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, each made durable in its own parent: an
        fsync of the folder holding an object does not keep the entry of that folder itself."""
        missing: list[Path] = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another ingest made it meanwhile
                new.mkdir()
            fsync_directory(new.parent)  # also then: its entry may not be durable yet

    def _copy_replace(self, source: Path, target: Path) -> None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def open_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix
        if not base.exists():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                stat = path.stat()
                yield ObjectInfo(
                    key=path.relative_to(self.root).as_posix(),
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                )
