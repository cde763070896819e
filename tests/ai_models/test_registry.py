"""The model registry: weights checked before they are read, clear errors naming the file and
the fix, the models that apply to a study, and a site's own TorchScript model plugged in
through an entry (exported by the test itself)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ai_models.contract import SeriesInput, StudyInput, Triage
from ai_models.qc import ImageQC
from ai_models.registry import DEFAULT_REGISTRY, Registry, RegistryEntry, RegistryError, WeightsError
from ai_models.runner import ModelRunner
from datasets import synthetic

# torch 2.13 deprecates TorchScript (for torch.export); sites still hand us TorchScript files,
# which it still writes and loads: the deprecation is not what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


def _entry(**fields: object) -> RegistryEntry:
    values: dict[str, object] = {
        "name": "site-ich",
        "version": "2.0",
        "kind": "torchscript",
        "modalities": ["CT"],
        "body_parts": ["HEAD"],
        "labels": ["haemorrhage"],
        "weights": "site-ich.pt",
        "sha256": "0" * 64,
        "thresholds": {"haemorrhage": 0.5},
        "triage": {"haemorrhage": "stat"},
        "card": "cards/site-ich.md",
        "input_spec": {"size": [32, 32], "window": [40, 80]},
    }
    values.update(fields)
    return RegistryEntry.model_validate(values)


def _study(modality: str = "CT", body_part: str | None = "HEAD", description: str | None = "Head 5mm") -> StudyInput:
    if modality == "CT":
        instances = tuple(synthetic.ct_series("head", 4, seed=7, rows=32, cols=32))
    else:
        instances = (synthetic.radiograph("DX", seed=7, size=32),)
    return StudyInput(
        study_uid="1.2.3",
        modality=modality,
        body_part=body_part,
        series=(SeriesInput("1.2.3.1", modality, body_part, description, instances),),
    )


class TinyHaemorrhageNet(torch.nn.Module):
    """Logit = 40 × (mean of the brightest image) − 8: high for a bright image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) * 40.0 - 8.0


def _export(folder: Path) -> tuple[Path, str]:
    (folder / "weights").mkdir(parents=True, exist_ok=True)
    path = folder / "weights" / "site-ich.pt"
    torch.jit.script(TinyHaemorrhageNet()).save(str(path))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_altered_weights_are_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path, digest = _export(tmp_path)
    registry = Registry([_entry(sha256=digest)], tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(WeightsError) as refused:
        registry.load(registry.get("site-ich"))
    message = str(refused.value)
    assert str(path) in message and "altered" in message and digest in message
    assert "yunying ai train site-ich" in message


def test_missing_weights_are_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    registry = Registry([_entry()], tmp_path)
    with pytest.raises(
        WeightsError, match=r"missing: .*site-ich\.pt does not exist\. Build them with `yunying ai train"
    ):
        registry.load(registry.get("site-ich"))


def test_applicable_models_follow_modality_and_body_part() -> None:
    registry = Registry(
        [
            Registry.from_file().get("image-qc"),
            _entry(),
            _entry(version="2.1"),
            _entry(name="chest", modalities=["DX"], body_parts=["CHEST"]),
        ],
        DEFAULT_REGISTRY.parent,
    )
    head_ct = [(e.name, e.version) for e in registry.applicable(_study())]
    assert head_ct == [("image-qc", "1.1"), ("site-ich", "2.1")]  # QC first, newest version only
    assert [e.name for e in registry.applicable(_study(body_part=None, description="头颅CT平扫"))] == [
        "image-qc",
        "site-ich",
    ]
    assert [e.name for e in registry.applicable(_study(body_part="ABDOMEN", description="腹部"))] == ["image-qc"]
    assert [e.name for e in registry.applicable(_study("DX", "CHEST", "胸部正位"))] == ["image-qc", "chest"]
    assert registry.applicable(_study("MR", None, None)) == []


def test_the_shipped_registry_loads_and_every_entry_has_its_card() -> None:
    registry = Registry.from_file()
    for entry in registry.entries:
        assert registry.card_path(entry).is_file(), entry.name
        assert not entry.clinically_validated  # nothing trained here is validated
    assert isinstance(registry.load(registry.get("image-qc")), ImageQC)


def test_a_bad_entry_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"models": [{"name": "typo", "version": "1", "kind": "rules", "modalitys": ["CT"]}]}))
    with pytest.raises(RegistryError, match=r"model typo in .*registry\.json"):
        Registry.from_file(path)


def test_a_sites_torchscript_model_runs_through_the_adapter_in_the_model_process(tmp_path: Path) -> None:
    _, digest = _export(tmp_path)
    registry = Registry([_entry(sha256=digest)], tmp_path)
    entry = registry.get("site-ich")
    model = registry.load(entry)
    study = _study()
    findings = model.findings(study, model.predict(model.prepare(study)))
    [finding] = findings
    assert finding.label == "haemorrhage" and finding.probability is not None
    bright = [np.mean(np.clip((s.pixel_array.astype(float) - 1024 - 0) / 80, 0, 1)) for s in study.series[0].instances]
    assert finding.locations[0].sop_instance_uid == str(
        study.series[0].instances[int(np.argmax(bright))].SOPInstanceUID
    )
    assert finding.positive == (finding.probability >= 0.5)
    assert finding.suggested_triage == (Triage.STAT if finding.positive else None)

    runner = ModelRunner(registry, threads=1)
    try:
        outcome = runner.run(entry, study, timeout_s=60)
    finally:
        runner.close()
    assert outcome.status == "done", outcome.reason
    assert [(f.label, round(f.probability or 0, 5)) for f in outcome.findings] == [
        (finding.label, round(finding.probability, 5))
    ]
