"""Non-contrast head CT: acute intracranial haemorrhage (registry ``head-ct-ich``).

Each axial slice is scored by a small 2-D DenseNet; the study's probability is its
highest slice's. A positive names the slices that drove it (highest first), with a box on the
top slice and a Grad-CAM heat map of it, and suggests ``stat``: a bleed is a critical finding.

Input: the study's longest CT series (at least ``min_slices``), built as a volume with
SimpleITK — slices as the worker sorted them along the slice normal, stored values rescaled
to HU, each slice averaged down to ``size`` (a 512² slice by 4×4 bins) — then MONAI's
intensity transform maps the brain window (``window``: centre/width, default 40/80) to 0…1.
Training (``ai_models/training.py``) runs the same ``volume_input`` on its phantoms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
import torch
from monai.transforms.intensity.array import ScaleIntensityRange
from pydicom.dataset import Dataset

from ai_models.contract import Finding, Location, NotApplicable, SeriesInput, StudyInput, Triage
from ai_models.models import nets
from ai_models.registry import RegistryEntry

LABEL: Final = "intracranial_haemorrhage"
HEATMAP_SLICES: Final = 1  # Grad-CAM only for the top slice: it is the costly part


@dataclass(frozen=True)
class Volume:
    """A CT series as model input: ``tensor`` ``[slices, 1, size, size]`` in window units, the
    SOP Instance UID of each slice, and the stored slices' pixel grid (rows, columns)."""

    tensor: torch.Tensor
    sop_instance_uids: tuple[str, ...]
    grid: tuple[int, int]


def hu_volume(instances: Sequence[Dataset]) -> sitk.Image:
    """The slices (already in order along the slice normal) as one SimpleITK volume in HU, with
    the series geometry: pixel spacing, slice spacing from the positions, origin, direction.
    Raises ``ValueError`` when the slices do not share one pixel grid."""
    first = instances[0]
    grid = (int(first.Rows), int(first.Columns))
    planes = []
    for ds in instances:
        if (int(ds.Rows), int(ds.Columns)) != grid:
            raise ValueError(
                f"slice {ds.SOPInstanceUID} is {ds.Rows}×{ds.Columns}, the series' first is {grid[0]}×{grid[1]}"
            )
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        planes.append(ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    image = sitk.GetImageFromArray(np.stack(planes))
    spacing = [float(v) for v in getattr(first, "PixelSpacing", [1.0, 1.0])]
    positions = [
        np.asarray([float(v) for v in getattr(ds, "ImagePositionPatient", [0, 0, i])]) for i, ds in enumerate(instances)
    ]
    step = float(np.linalg.norm(positions[-1] - positions[0]) / (len(positions) - 1)) if len(positions) > 1 else 1.0
    image.SetSpacing((spacing[1], spacing[0], step or 1.0))
    image.SetOrigin(tuple(float(v) for v in positions[0]))
    orientation = [float(v) for v in getattr(first, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, col)
    image.SetDirection(tuple(float(v) for v in np.column_stack([row, col, normal]).ravel()))
    return image


def in_plane(image: sitk.Image, size: int) -> sitk.Image:
    """Each slice brought to ``size``×``size`` pixels over the same field of view, slices kept:
    bin averaging when the grid divides evenly (512 → 128: 4×4 bins), else a Gaussian
    anti-alias and linear resampling."""
    columns, rows, slices = image.GetSize()
    if columns % size == 0 and rows % size == 0 and columns // size == rows // size:
        factor = columns // size
        return image if factor == 1 else sitk.BinShrink(image, [factor, factor, 1])
    spacing = image.GetSpacing()
    target = (spacing[0] * columns / size, spacing[1] * rows / size, spacing[2])
    smoothed = sitk.SmoothingRecursiveGaussian(image, [target[0] / 2, target[1] / 2, 1e-3])
    return sitk.Resample(
        smoothed,
        (size, size, slices),
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        target,
        image.GetDirection(),
        -1024.0,
    )


def volume_input(instances: Sequence[Dataset], size: int, window: tuple[float, float]) -> Volume:
    """The model input of a CT series (see the module docstring)."""
    image = in_plane(hu_volume(instances), size)
    centre, width = window
    scale = ScaleIntensityRange(a_min=centre - width / 2, a_max=centre + width / 2, b_min=0.0, b_max=1.0, clip=True)
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # [slices, size, size]
    tensor = torch.as_tensor(scale(array), dtype=torch.float32)[:, None]
    first = instances[0]
    return Volume(tensor, tuple(str(ds.SOPInstanceUID) for ds in instances), (int(first.Rows), int(first.Columns)))


@dataclass(frozen=True)
class Prediction:
    slice_probabilities: npt.NDArray[np.float32]  # one per slice, in series order
    heatmaps: dict[int, npt.NDArray[np.float32]]  # slice index → map at the model's size
    sop_instance_uids: tuple[str, ...]  # of the slices scored (the volume prepare built)
    grid: tuple[int, int]  # their pixel grid


class HeadCTHaemorrhage(nets.TrainedModel):
    """The registry's ``head-ct-ich`` (factory ``ai_models.models.head_ct:HeadCTHaemorrhage``).
    Raises ``CheckpointError`` when the weights are not this model's."""

    def __init__(self, entry: RegistryEntry, weights: Path | None) -> None:
        super().__init__(entry, weights, (LABEL,))
        spec = entry.input_spec
        self.size = int(spec.get("size", [128, 128])[0])
        window = spec.get("window", [40, 80])
        self.window = (float(window[0]), float(window[1]))
        self.min_slices = int(spec.get("min_slices", 8))

    def prepare(self, study: StudyInput) -> Volume:
        series = _axial_series(study, self.min_slices)
        return volume_input(series.instances, self.size, self.window)

    def predict(self, prepared: Volume) -> Prediction:
        net = self.checkpoint.net
        scores = nets.probabilities(net, prepared.tensor)[:, 0]
        heatmaps: dict[int, npt.NDArray[np.float32]] = {}
        if float(scores.max()) >= self.entry.threshold(LABEL):
            top = [int(i) for i in np.argsort(-scores)[:HEATMAP_SLICES]]
            maps = nets.grad_cam(net, prepared.tensor[top], 0)
            heatmaps = {index: maps[n] for n, index in enumerate(top) if float(maps[n].max()) > 0.0}
        return Prediction(scores, heatmaps, prepared.sop_instance_uids, prepared.grid)

    def findings(self, study: StudyInput, prediction: Prediction) -> list[Finding]:
        volume_uids = prediction.sop_instance_uids
        scores = prediction.slice_probabilities
        threshold = self.entry.threshold(LABEL)
        order = [int(i) for i in np.argsort(-scores)]
        best = order[0]
        probability = float(scores[best])
        positive = probability >= threshold
        driving = [i for i in order[:3] if scores[i] >= threshold] if positive else [best]
        rows, cols = prediction.grid
        locations = []
        heatmap = None
        for index in driving:
            box = None
            if index in prediction.heatmaps:
                full = nets.upsample(prediction.heatmaps[index], (rows, cols))
                box = nets.hot_box(full)
                if index == best:
                    heatmap = full
            locations.append(Location(volume_uids[index], box=box))
        slices = ", ".join(f"{i + 1} ({scores[i]:.2f})" for i in driving)
        if positive:
            explanation = (
                f"Possible acute intracranial haemorrhage: probability {probability:.2f} (operating point "
                f"{threshold:.2f}); highest on slice(s) {slices} of {len(scores)}."
            )
        else:
            explanation = (
                f"No haemorrhage found: highest slice probability {probability:.2f} (slice {best + 1} of "
                f"{len(scores)}) is below the operating point {threshold:.2f}."
            )
        return [
            Finding(
                model=self.name,
                version=self.version,
                label=LABEL,
                probability=probability,
                positive=positive,
                explanation=explanation,
                suggested_triage=self.entry.triage.get(LABEL, Triage.STAT) if positive else None,
                locations=tuple(locations),
                heatmap=heatmap,
                heatmap_of=volume_uids[best] if heatmap is not None else None,
            )
        ]


def _axial_series(study: StudyInput, min_slices: int) -> SeriesInput:
    """The longest CT series with at least ``min_slices`` slices (a scout or a single
    reformatted image is not a head CT to read)."""
    candidates = [s for s in study.series if s.modality == "CT" and len(s.instances) >= min_slices]
    if not candidates:
        longest = max((len(s.instances) for s in study.series if s.modality == "CT"), default=0)
        raise NotApplicable(f"no CT series of at least {min_slices} slices (longest: {longest})")
    return max(candidates, key=lambda s: len(s.instances))
