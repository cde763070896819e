"""``yunying verify``: the index and the object store agree (issue G).

Two walks. The index walk reads every object an instance or quarantine row names and checks it
is there, whole (its size) and unaltered (its sha256 — for an instance, of the data set after
the file meta group, as ingest recorded it; for a quarantined file, of the whole file). The store
walk lists every object and reports those no row references (orphans) — older than the orphan
grace, since an ingest writes its object a moment before it commits its row. With
``quarantine_orphans`` an orphan is moved under ``orphaned/`` and recorded as a quarantine row
(reason ``orphan``), where `yunying quarantine list` shows it; nothing is ever deleted here.

A row found missing or altered is checked again before it is reported, so an instance replaced
by a new version while the walk ran is not a false alarm.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.db import transaction
from pacs.index.models import Instance, Quarantine
from pacs.index.types import utcnow
from pacs.storage import BlobStore

log = structlog.get_logger(__name__)

PREFIXES: Final = ("instances", "quarantine", "orphaned")
ORPHANED: Final = "orphaned"
_PAGE: Final = 500

Kind = Literal["missing", "truncated", "altered", "orphan"]


@dataclass(frozen=True)
class Finding:
    kind: Kind
    object_key: str
    detail: str
    row: str | None = None  # "instance 17", "quarantine 3"

    def __str__(self) -> str:
        where = f" ({self.row})" if self.row else ""
        return f"{self.kind.upper()} {self.object_key}{where}: {self.detail}"


@dataclass
class Integrity:
    objects_checked: int = 0
    bytes_checked: int = 0
    objects_listed: int = 0
    findings: list[Finding] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # orphans moved under orphaned/

    @property
    def ok(self) -> bool:
        return not [f for f in self.findings if f.kind != "orphan" or f.object_key not in self.quarantined]

    def count(self, kind: Kind) -> int:
        return sum(1 for f in self.findings if f.kind == kind)


@dataclass(frozen=True)
class _Expected:
    table: Literal["instance", "quarantine"]
    row_id: int
    object_key: str
    size: int
    sha256: str
    offset: int  # where the hashed bytes start

    @property
    def row(self) -> str:
        return f"{self.table} {self.row_id}"


def _instances(session: Session, after: int) -> list[_Expected]:
    rows = session.execute(
        select(Instance.id, Instance.object_key, Instance.size, Instance.sha256, Instance.dataset_offset)
        .where(Instance.id > after)
        .order_by(Instance.id)
        .limit(_PAGE)
    ).all()
    return [_Expected("instance", i, key, size, digest, offset) for i, key, size, digest, offset in rows]


def _quarantined(session: Session, after: int) -> list[_Expected]:
    rows = session.execute(
        select(Quarantine.id, Quarantine.object_key, Quarantine.size, Quarantine.sha256)
        .where(Quarantine.id > after)
        .order_by(Quarantine.id)
        .limit(_PAGE)
    ).all()
    return [_Expected("quarantine", i, key, size, digest, 0) for i, key, size, digest in rows]


def _rows(sessions: sessionmaker[Session]) -> Iterator[_Expected]:
    """Every row naming an object, a page per transaction: instances, then quarantined files."""
    for page_of in (_instances, _quarantined):
        after = 0
        while True:
            with transaction(sessions, read_only=True) as session:
                page = page_of(session, after)
            if not page:
                break
            yield from page
            after = page[-1].row_id


def count_rows(sessions: sessionmaker[Session]) -> int:
    """How many objects the index walk reads (for a progress bar)."""
    with transaction(sessions, read_only=True) as session:
        instances = session.scalar(select(func.count()).select_from(Instance)) or 0
        quarantined = session.scalar(select(func.count()).select_from(Quarantine)) or 0
    return instances + quarantined


def _check(store: BlobStore, expected: _Expected) -> tuple[Finding | None, int]:
    """Read the object once; returns what is wrong with it (or None) and the bytes read."""
    digest = hashlib.sha256()
    read = 0
    try:
        for chunk in store.open_stream(expected.object_key):
            skip = max(0, expected.offset - read)
            digest.update(chunk[skip:])
            read += len(chunk)
    except KeyError:  # the store's "no such object"
        return Finding(
            "missing", expected.object_key, "the index names it, the store does not have it", expected.row
        ), 0
    if read != expected.size:
        what = f"{read} bytes in the store, {expected.size} indexed"
        return Finding("truncated", expected.object_key, what, expected.row), read
    if digest.hexdigest() != expected.sha256:
        return Finding(
            "altered", expected.object_key, "sha256 differs from the one recorded at ingest", expected.row
        ), read
    return None, read


def _still_indexed(sessions: sessionmaker[Session], expected: _Expected) -> bool:
    model = Instance if expected.table == "instance" else Quarantine
    with transaction(sessions, read_only=True) as session:
        key = session.scalar(select(model.object_key).where(model.id == expected.row_id))
    return key == expected.object_key


def verify_store(
    store: BlobStore,
    sessions: sessionmaker[Session],
    *,
    orphan_grace: timedelta,
    quarantine_orphans: bool = False,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> Integrity:
    """Check every indexed object, then list the store for orphans; see the module doc."""
    result = Integrity()
    for expected in _rows(sessions):
        finding, read = _check(store, expected)
        result.objects_checked += 1
        result.bytes_checked += read
        if finding is not None and _still_indexed(sessions, expected):
            again, _ = _check(store, expected)
            if again is not None:
                result.findings.append(again)
                log.error("integrity.problem", kind=again.kind, object_key=again.object_key, row=again.row)
        if progress is not None:
            progress(1)
    cutoff = (now or utcnow()) - orphan_grace
    for prefix in PREFIXES:
        listed = list(store.list(prefix))
        result.objects_listed += len(listed)
        for start in range(0, len(listed), _PAGE):
            chunk = listed[start : start + _PAGE]
            keys = [info.key for info in chunk]
            with transaction(sessions, read_only=True) as session:
                referenced = set(session.scalars(select(Instance.object_key).where(Instance.object_key.in_(keys))))
                referenced |= set(session.scalars(select(Quarantine.object_key).where(Quarantine.object_key.in_(keys))))
            for info in chunk:
                if info.key in referenced or info.modified > cutoff:
                    continue
                result.findings.append(Finding("orphan", info.key, f"{info.size} bytes no index row references"))
                if quarantine_orphans:
                    result.quarantined.append(_quarantine_orphan(store, sessions, info.key, info.size))
    return result


def _quarantine_orphan(store: BlobStore, sessions: sessionmaker[Session], key: str, size: int) -> str:
    """Move an orphan under ``orphaned/`` with a quarantine row; returns its old key."""
    target = key if key.startswith(f"{ORPHANED}/") else f"{ORPHANED}/{key}"
    with tempfile.TemporaryDirectory(prefix="yunying-verify-") as folder:
        copy = Path(folder) / "object"
        digest = hashlib.sha256()
        with copy.open("wb") as handle:
            for chunk in store.open_stream(key):
                handle.write(chunk)
                digest.update(chunk)
        if target != key:
            store.put_file(target, copy)
        with transaction(sessions) as session:
            session.add(
                Quarantine(
                    reason_code="orphan",
                    reason=f"found by `yunying verify` at {key}: no index row referenced it",
                    object_key=target,
                    size=size,
                    sha256=digest.hexdigest(),
                    received_at=utcnow(),
                )
            )
    if target != key:
        store.delete(key)
    log.warning("integrity.orphan_quarantined", object_key=key, moved_to=target)
    return key
