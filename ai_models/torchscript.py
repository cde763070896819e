"""The generic adapter for a site's own TorchScript model (registry kind ``torchscript``).

Its input contract (docs/ai.md, "Plugging in a site's own model"):

- images: the longest CT series of the study, or the first radiograph, as one float32 tensor
  ``[N, 1, H, W]``; ``H, W`` = ``input_spec.size`` (default 128×128, bilinear resize);
- CT in HU windowed by ``input_spec.window`` ``[centre, width]`` (default 40/80, brain) to
  0…1; radiographs scaled from their 1st–99th percentile to 0…1, MONOCHROME1 inverted;
- at most ``input_spec.max_slices`` (default 64) CT slices, evenly spread over the series;
- output ``[N, len(labels)]``: logits (``input_spec.output = "logits"``, the default) or
  probabilities (``"probabilities"``); the study's probability of a label is its highest
  image's, and that image is where the finding is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ai_models.contract import Finding, Location, NotApplicable, SeriesInput, StudyInput
from ai_models.registry import RegistryEntry

RADIOGRAPHY = {"DX", "CR"}


@dataclass(frozen=True)
class Prepared:
    tensor: torch.Tensor
    sop_instance_uids: tuple[str, ...]
    series: SeriesInput


@dataclass(frozen=True)
class Scores:
    probabilities: npt.NDArray[np.float32]  # [images, labels]
    sop_instance_uids: tuple[str, ...]  # the image of each row


class TorchScriptModel:
    """Runs a TorchScript file under the adapter contract above. Raises ``NotApplicable`` for a
    study without a CT series or radiograph, ``ValueError`` when the model's output does not
    have one column per registered label."""

    def __init__(self, entry: RegistryEntry, weights: Path) -> None:
        if not entry.labels:
            raise ValueError(f"TorchScript model {entry.name} lists no labels: the registry entry needs them")
        self.entry = entry
        self.name = entry.name
        self.version = entry.version
        self.module = torch.jit.load(str(weights), map_location="cpu")  # type: ignore[no-untyped-call]
        self.module.eval()
        spec = entry.input_spec
        self.size = tuple(int(v) for v in spec.get("size", (128, 128)))
        self.window = tuple(float(v) for v in spec.get("window", (40.0, 80.0)))
        self.max_slices = int(spec.get("max_slices", 64))
        self.logits = spec.get("output", "logits") == "logits"

    def prepare(self, study: StudyInput) -> Prepared:
        series = _input_series(study)
        instances = series.instances
        if series.modality == "CT" and len(instances) > self.max_slices:
            picks = np.linspace(0, len(instances) - 1, self.max_slices).round().astype(int)
            instances = tuple(instances[i] for i in picks)
        images = [self._scaled(ds, series.modality) for ds in instances]
        tensor = torch.from_numpy(np.stack(images)[:, None])
        tensor = torch.nn.functional.interpolate(tensor, size=self.size, mode="bilinear", align_corners=False)
        return Prepared(tensor, tuple(str(ds.SOPInstanceUID) for ds in instances), series)

    def _scaled(self, ds: Any, modality: str) -> npt.NDArray[np.float32]:
        pixels: npt.NDArray[np.float32] = np.asarray(ds.pixel_array, dtype=np.float32)
        if modality == "CT":
            hu = pixels * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
            centre, width = self.window
            windowed: npt.NDArray[np.float32] = np.clip((hu - (centre - width / 2)) / width, 0, 1).astype(np.float32)
            return windowed
        low, high = np.percentile(pixels, [1.0, 99.0])
        scaled = np.clip((pixels - low) / max(float(high - low), 1.0), 0, 1)
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            scaled = 1.0 - scaled
        result: npt.NDArray[np.float32] = scaled.astype(np.float32)
        return result

    def predict(self, prepared: Prepared) -> Scores:
        output = self.module(prepared.tensor)
        scores = torch.sigmoid(output) if self.logits else output
        array: npt.NDArray[np.float32] = scores.detach().float().numpy()
        if array.ndim != 2 or array.shape[1] != len(self.entry.labels):
            raise ValueError(
                f"TorchScript model {self.name} returned shape {tuple(array.shape)}; the registry lists "
                f"{len(self.entry.labels)} label(s), so [N, {len(self.entry.labels)}] was expected"
            )
        return Scores(array, prepared.sop_instance_uids)

    def findings(self, study: StudyInput, prediction: Scores) -> list[Finding]:
        result = []
        scores, uids = prediction.probabilities, prediction.sop_instance_uids
        for column, label in enumerate(self.entry.labels):
            best = int(np.argmax(scores[:, column]))
            probability = float(scores[best, column])
            threshold = self.entry.threshold(label)
            positive = probability >= threshold
            result.append(
                Finding(
                    model=self.name,
                    version=self.version,
                    label=label,
                    probability=probability,
                    positive=positive,
                    explanation=(
                        f"{label}: probability {probability:.2f} (operating point {threshold:.2f}), highest on "
                        f"image {best + 1} of {len(uids)} read"
                    ),
                    suggested_triage=self.entry.triage.get(label) if positive else None,
                    locations=(Location(uids[best]),),
                )
            )
        return result


def _input_series(study: StudyInput) -> SeriesInput:
    ct = [s for s in study.series if s.modality == "CT" and s.instances]
    if ct:
        return max(ct, key=lambda s: len(s.instances))
    films = [s for s in study.series if s.modality in RADIOGRAPHY and s.instances]
    if films:
        return films[0]
    raise NotApplicable("the study has no CT series and no radiograph")
