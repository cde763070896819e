"""Chest film triage (registry ``chest-dx-triage``): nodule or mass, pleural effusion,
pneumothorax, each with its own probability and operating point, and a Grad-CAM heat map of
each positive. A positive pneumothorax suggests ``urgent``; nodules and effusions are findings
for the reader, not reasons to jump the queue (the registry's ``triage`` says which).

Input: the study's first frontal film (View Position PA or AP, or none given; a lateral alone
is not read). Stored values, MONOCHROME1 inverted so that bone is bright, averaged down to
``size``² with MONAI's area resize, then scaled so that the 1st–99th percentile spans 0…1 —
films from different detectors and bit depths look alike to the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from monai.transforms.intensity.array import ScaleIntensityRangePercentiles
from monai.transforms.spatial.array import Resize
from pydicom.dataset import Dataset

from ai_models.contract import Finding, Location, NotApplicable, StudyInput
from ai_models.models import nets
from ai_models.registry import RegistryEntry

LABELS: Final = ("nodule", "pleural_effusion", "pneumothorax")
FRONTAL: Final = {"PA", "AP", ""}
_WORDS: Final = {"nodule": "nodule or mass", "pleural_effusion": "pleural effusion", "pneumothorax": "pneumothorax"}


def film_input(ds: Dataset, size: int) -> torch.Tensor:
    """One film as model input ``[1, 1, size, size]`` (see the module docstring)."""
    pixels = ds.pixel_array.astype(np.float32)
    if pixels.ndim != 2:
        raise NotApplicable(f"film {ds.SOPInstanceUID} is not a single greyscale frame (shape {pixels.shape})")
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        pixels = pixels.max() - pixels
    small = Resize((size, size), mode="area")(torch.as_tensor(pixels)[None])
    scaled = ScaleIntensityRangePercentiles(lower=1.0, upper=99.0, b_min=0.0, b_max=1.0, clip=True)(small)
    return torch.as_tensor(scaled, dtype=torch.float32)[None]


@dataclass(frozen=True)
class Film:
    tensor: torch.Tensor
    dataset: Dataset


@dataclass(frozen=True)
class Prediction:
    probabilities: npt.NDArray[np.float32]  # one per label
    heatmaps: dict[int, npt.NDArray[np.float32]]  # label index → map at the model's size
    film: Dataset  # the film prepare chose


class ChestTriage(nets.TrainedModel):
    """The registry's ``chest-dx-triage`` (factory ``ai_models.models.chest_dx:ChestTriage``)."""

    def __init__(self, entry: RegistryEntry, weights: Path | None) -> None:
        super().__init__(entry, weights, tuple(entry.labels) or LABELS)
        self.size = int(entry.input_spec.get("size", [256, 256])[0])

    def prepare(self, study: StudyInput) -> Film:
        ds = frontal_film(study)
        return Film(film_input(ds, self.size), ds)

    def predict(self, prepared: Film) -> Prediction:
        net = self.checkpoint.net
        probabilities = nets.probabilities(net, prepared.tensor)[0]
        heatmaps = {}
        for index, label in enumerate(self.labels):
            if probabilities[index] >= self.entry.threshold(label):
                heat = nets.grad_cam(net, prepared.tensor, index)[0]
                if float(heat.max()) > 0.0:  # a map without heat points nowhere: none is shown
                    heatmaps[index] = heat
        return Prediction(probabilities, heatmaps, prepared.dataset)

    def findings(self, study: StudyInput, prediction: Prediction) -> list[Finding]:
        ds = prediction.film
        uid = str(ds.SOPInstanceUID)
        grid = (int(ds.Rows), int(ds.Columns))
        result = []
        for index, label in enumerate(self.labels):
            probability = float(prediction.probabilities[index])
            threshold = self.entry.threshold(label)
            positive = probability >= threshold
            heatmap = nets.upsample(prediction.heatmaps[index], grid) if index in prediction.heatmaps else None
            box = nets.hot_box(heatmap) if heatmap is not None else None
            where = f" Heat map: rows {box[0]}–{box[2]}, columns {box[1]}–{box[3]} of the film." if box else ""
            result.append(
                Finding(
                    model=self.name,
                    version=self.version,
                    label=label,
                    probability=probability,
                    positive=positive,
                    explanation=(
                        f"{'Possible' if positive else 'No'} {_WORDS.get(label, label)}: probability "
                        f"{probability:.2f} (operating point {threshold:.2f}).{where}"
                    ),
                    suggested_triage=self.entry.triage.get(label) if positive else None,
                    locations=(Location(uid, box=box),),
                    heatmap=heatmap,
                    heatmap_of=uid if heatmap is not None else None,
                )
            )
        return result


def frontal_film(study: StudyInput) -> Dataset:
    """The first PA/AP film of the study (a film without View Position counts as frontal: many
    CR readers leave it empty). Raises ``NotApplicable`` when there is none."""
    films = [ds for s in study.series if s.modality in {"DX", "CR"} for ds in s.instances]
    if not films:
        raise NotApplicable("the study has no DX or CR film")
    for ds in films:
        if str(getattr(ds, "ViewPosition", "") or "").upper() in FRONTAL:
            return ds
    views = sorted({str(getattr(ds, "ViewPosition", "")) for ds in films})
    raise NotApplicable(f"no frontal (PA/AP) film: the study's views are {', '.join(views)}")
