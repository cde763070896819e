"""The one contract every pre-screening model implements (MONAI Deploy's operator in spirit):
``prepare`` a study's images into model input, ``predict``, and turn the prediction into
``findings``. The worker (``ai_models/worker.py``) reads the images through ``pacs`` and hands a
``StudyInput`` to each model the registry says applies; models never touch the index, the store
or the network."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset


class Triage(StrEnum):
    """The priority a finding suggests to routing (``reading`` decides whether it may apply)."""

    STAT = "stat"  # a critical finding: e.g. an intracranial haemorrhage
    URGENT = "urgent"  # e.g. a large pneumothorax, a large effusion


@dataclass(frozen=True)
class SeriesInput:
    series_uid: str
    modality: str
    body_part: str | None
    description: str | None
    # Data sets with pixel data, in acquisition order (for CT: sorted along the patient axis by
    # ImagePositionPatient; the worker sorts, models may rely on it).
    instances: tuple[Dataset, ...]


@dataclass(frozen=True)
class StudyInput:
    study_uid: str
    modality: str  # the study's imaging modality (CT, DX, CR)
    body_part: str | None
    series: tuple[SeriesInput, ...]


@dataclass(frozen=True)
class Location:
    """Where a finding is: the instance (and frame) and, when known, a box in pixel
    coordinates of that image (row0, col0, row1, col1)."""

    sop_instance_uid: str
    frame: int = 1
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Finding:
    """One label of one model for one study (DESIGN.md: AI finding)."""

    model: str
    version: str
    label: str  # e.g. pneumothorax, intracranial_haemorrhage, qc.missing_slices
    probability: float | None  # None for a rule (QC) finding
    positive: bool  # at or above the model's registered operating point
    explanation: str  # one sentence a reader can check: why, where
    suggested_triage: Triage | None = None
    locations: tuple[Location, ...] = ()
    # A heat map for the top location(s): float32 in [0, 1], the shape of that image's pixels.
    heatmap: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    heatmap_of: str | None = None  # the SOP Instance UID the heat map overlays


class Model(Protocol):
    """What the registry loads and the worker runs. ``prepare`` may raise ``NotApplicable``
    (the study is not what the model reads: the worker records ``ai.skipped`` for it)."""

    name: str
    version: str

    def prepare(self, study: StudyInput) -> Any: ...

    def predict(self, prepared: Any) -> Any: ...

    def findings(self, study: StudyInput, prediction: Any) -> list[Finding]: ...


class NotApplicable(Exception):
    """The study is not one this model reads (wrong view, too few slices…); the message says why."""
