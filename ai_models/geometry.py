"""Where slices lie: positions along the slice normal from ImagePositionPatient and
ImageOrientationPatient (PS3.3 C.7.6.2.1.1), shared by the worker's sort and the QC rules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset


def slice_normal(ds: Dataset) -> npt.NDArray[np.float64] | None:
    """The unit normal of a slice (row cosines × column cosines), or ``None`` without a valid
    ImageOrientationPatient."""
    orientation = getattr(ds, "ImageOrientationPatient", None)
    if orientation is None or len(orientation) != 6:
        return None
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    length = float(np.linalg.norm(normal))
    return None if length < 1e-6 else normal / length


def slice_positions(instances: Sequence[Dataset]) -> list[float] | None:
    """Each slice's position along the first slice's normal (mm), or ``None`` when the geometry
    is absent (a slice without ImagePositionPatient, no ImageOrientationPatient)."""
    if not instances:
        return None
    normal = slice_normal(instances[0])
    if normal is None or any(getattr(ds, "ImagePositionPatient", None) is None for ds in instances):
        return None
    return [float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)) for ds in instances]


def sorted_along_normal(instances: Sequence[Dataset]) -> tuple[Dataset, ...]:
    """Slices in order along the slice normal (feet → head for an axial series); by Instance
    Number when the geometry is missing, as received when that is missing too."""
    positions = slice_positions(instances)
    if positions is not None:
        order = sorted(range(len(instances)), key=lambda i: (positions[i], i))
        return tuple(instances[i] for i in order)
    if all(getattr(ds, "InstanceNumber", None) is not None for ds in instances):
        return tuple(sorted(instances, key=lambda ds: int(ds.InstanceNumber)))
    return tuple(instances)
