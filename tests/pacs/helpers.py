"""Test data and checks shared by the pacs tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from datasets import synthetic
from pacs.index.db import transaction
from pacs.index.models import Instance
from pacs.part10 import file_meta_end
from pacs.service import Services


def dataset_sha256(data: bytes) -> str:
    """sha256 of the data set after the group 0002 file meta, which a receiver rebuilds."""
    return hashlib.sha256(data).hexdigest()


def file_dataset_sha256(path: Path) -> str:
    offset = file_meta_end(path)
    assert offset is not None, f"{path} is not Part 10"
    return dataset_sha256(path.read_bytes()[offset:])


def stored_dataset_sha256(services: Services, instance: Instance) -> str:
    return dataset_sha256(services.store.get(instance.object_key)[instance.dataset_offset :])


def current_instances(services: Services) -> list[Instance]:
    with transaction(services.sessions) as session:
        return list(session.scalars(select(Instance).where(Instance.is_current.is_(True))))


def all_instances(services: Services, sop_instance_uid: str | None = None) -> list[Instance]:
    with transaction(services.sessions) as session:
        query = select(Instance).order_by(Instance.version)
        if sop_instance_uid:
            query = query.where(Instance.sop_instance_uid == sop_instance_uid)
        return list(session.scalars(query))


def write_ct(folder: Path, *, slices: int, seed: int, size: int = 512, kind: str = "abdomen") -> list[Path]:
    """A cached synthetic CT series (written once per folder)."""
    if folder.exists() and len(list(folder.glob("*.dcm"))) == slices:
        return sorted(folder.glob("*.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    return synthetic.write_series(synthetic.ct_series(kind, slices, seed=seed, rows=size, cols=size), folder)  # type: ignore[arg-type]


def write_dx(folder: Path, *, seed: int, size: int = 2048) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return synthetic.write_series([synthetic.radiograph("DX", seed=seed, size=size)], folder)[0]


def small_ct(seed: int = 5, size: int = 64) -> Dataset:
    """One small CT slice in memory, for tests that modify a data set before sending it."""
    return synthetic.ct_series("abdomen", 1, seed=seed, rows=size, cols=size)[0]


def read(path: Path) -> Dataset:
    return pydicom.dcmread(path)
