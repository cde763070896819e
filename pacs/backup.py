"""Backup and restore of the embedded shape (SQLite + a folder), issue G. The production shape
(PostgreSQL + S3/MinIO) is backed up with its own tools: docs/operations.md.

A backup is a folder: ``yunying.db`` (an online SQLite backup — a consistent snapshot taken
while the service runs), ``objects/`` (the object store) and ``MANIFEST.json``. The index is
copied **first**: every object a snapshot row names was written before that row committed, so it
is already in the folder when the objects are copied after; objects that arrive in between are
copied too and are orphans of the restored index, which the orphan sweep (or ``yunying verify
--quarantine-orphans``) deals with. Objects are never changed once written, so they are
hard-linked into the backup when it is on the same file system (instant, no extra space until
the original is deleted) and copied otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pacs.index.migrate import current
from pacs.index.types import utcnow
from pacs.settings import Settings, StorageBackend

MANIFEST: Final = "MANIFEST.json"
INDEX: Final = "yunying.db"
OBJECTS: Final = "objects"


class BackupRefused(Exception):
    """The backup or restore cannot be done as asked; the message says what to do instead."""


@dataclass(frozen=True)
class BackupSummary:
    folder: Path
    taken_at: datetime
    revision: str | None
    objects: int
    bytes: int
    linked: int  # objects hard-linked rather than copied


def _embedded(settings: Settings) -> Path:
    """The SQLite file of the embedded shape; refuses the production shape."""
    if settings.database_url and not settings.database_url.startswith("sqlite"):
        raise BackupRefused(
            "this index is PostgreSQL: back it up with pg_dump / point-in-time recovery and the objects with "
            "MinIO versioning or replication (docs/operations.md, 'Backup and restore')"
        )
    if settings.storage_backend is not StorageBackend.FOLDER:
        raise BackupRefused(
            "the object store is S3: back it up with MinIO versioning or replication (docs/operations.md)"
        )
    url = settings.resolved_database_url
    return Path(url.removeprefix("sqlite:///"))


def _copy_objects(source: Path, target: Path, progress: Callable[[int], None] | None) -> tuple[int, int, int]:
    count = size = linked = 0
    for folder, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .incoming: data still arriving
        relative = Path(folder).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.startswith("."):
                continue
            src, dst = Path(folder) / name, target / relative / name
            try:
                os.link(src, dst)
                linked += 1
            except FileExistsError:
                pass
            except OSError:
                shutil.copy2(src, dst)
            count += 1
            size += src.stat().st_size
            if progress is not None:
                progress(1)
    return count, size, linked


def count_objects(settings: Settings) -> int:
    root = settings.objects_path
    return sum(
        1
        for folder, dirs, files in os.walk(root)
        if not any(part.startswith(".") for part in Path(folder).relative_to(root).parts)
        for name in files
        if not name.startswith(".")
    )


def create_backup(settings: Settings, folder: Path, *, progress: Callable[[int], None] | None = None) -> BackupSummary:
    """Back up the embedded index and objects into ``folder`` (new or empty)."""
    database = _embedded(settings)
    if not database.exists():
        raise BackupRefused(f"no index at {database}: nothing to back up (is YUNYING_HOME right?)")
    if folder.exists() and any(folder.iterdir()):
        raise BackupRefused(f"{folder} is not empty: give a new folder for each backup")
    folder.mkdir(parents=True, exist_ok=True)
    taken_at = utcnow()
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(folder / INDEX)
    try:
        source.backup(target, pages=1024)  # a consistent snapshot, the writer only paused per step
    finally:
        target.close()
        source.close()
    revision = current(f"sqlite:///{folder / INDEX}")
    count, size, linked = _copy_objects(settings.objects_path, folder / OBJECTS, progress)
    summary = BackupSummary(folder, taken_at, revision, count, size, linked)
    manifest: dict[str, Any] = {
        "taken_at": taken_at.isoformat(),
        "schema_revision": revision,
        "objects": count,
        "bytes": size,
        "source_home": str(settings.home.resolve()),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return summary


def restore_backup(
    settings: Settings, folder: Path, *, force: bool = False, progress: Callable[[int], None] | None = None
) -> BackupSummary:
    """Restore a backup into this (stopped) installation's home. Refuses to overwrite an index
    unless ``force``; the service must not run meanwhile."""
    database = _embedded(settings)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists() or not (folder / INDEX).exists():
        raise BackupRefused(f"{folder} is not a Yunying backup (no {MANIFEST} or {INDEX})")
    if database.exists() and not force:
        raise BackupRefused(f"{database} exists: stop the service and pass --force to replace it with the backup")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    database.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{folder / INDEX}?mode=ro", uri=True)
    target = sqlite3.connect(database)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    count, size, linked = _copy_objects(folder / OBJECTS, settings.objects_path, progress)
    return BackupSummary(
        folder, datetime.fromisoformat(manifest["taken_at"]), manifest.get("schema_revision"), count, size, linked
    )
