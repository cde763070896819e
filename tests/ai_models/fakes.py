"""Test-only models, registered by the tests' own registry objects: one that raises, one that
hangs, one that is slow and says when it started, one that finds something with a heat map.
They run in the worker's model process, so they live in an importable module."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ai_models.contract import Finding, Location, StudyInput, Triage
from ai_models.registry import RegistryEntry


class _Base:
    def __init__(self, entry: RegistryEntry, weights: Path | None = None) -> None:
        self.entry = entry
        self.name = entry.name
        self.version = entry.version

    def prepare(self, study: StudyInput) -> StudyInput:
        return study

    def predict(self, prepared: Any) -> Any:
        return prepared

    def findings(self, study: StudyInput, prediction: Any) -> list[Finding]:
        return []


class RaisingModel(_Base):
    def predict(self, prepared: Any) -> Any:
        raise RuntimeError("weights exploded")


class HangingModel(_Base):
    def predict(self, prepared: Any) -> Any:
        time.sleep(3600)  # stuck for good: only killing its process stops it


class SlowModel(_Base):
    """Writes ``input_spec.marker`` when it starts predicting, then takes ``input_spec.seconds``."""

    def predict(self, prepared: Any) -> Any:
        Path(self.entry.input_spec["marker"]).write_text("started")
        time.sleep(float(self.entry.input_spec.get("seconds", 60)))
        return prepared


class HeatmapModel(_Base):
    """A positive 'pneumothorax' at 0.9 on the first image, with a heat map over its centre."""

    def findings(self, study: StudyInput, prediction: Any) -> list[Finding]:
        first = study.series[0].instances[0]
        heat = np.zeros((int(first.Rows), int(first.Columns)), np.float32)
        heat[first.Rows // 4 : first.Rows // 2, first.Columns // 4 : first.Columns // 2] = 1.0
        return [
            Finding(
                model=self.name,
                version=self.version,
                label="pneumothorax",
                probability=0.9,
                positive=True,
                explanation="large apical lucency without lung markings (test model)",
                suggested_triage=Triage.URGENT,
                locations=(Location(str(first.SOPInstanceUID), box=(8, 8, 16, 16)),),
                heatmap=heat,
                heatmap_of=str(first.SOPInstanceUID),
            )
        ]
