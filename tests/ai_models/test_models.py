"""The project's own models as shipped: the phantoms' findings and their truth, the registered
weights run through ``prepare → predict → findings`` (what the worker runs), the evaluation the
cards state re-run on a smaller held-out set, and training itself on a copy of the registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ai_models.contract import NotApplicable, SeriesInput, StudyInput
from ai_models.models import nets
from ai_models.models.chest_dx import ChestTriage
from ai_models.models.head_ct import LABEL, HeadCTHaemorrhage
from ai_models.registry import DEFAULT_REGISTRY, Registry, WeightsError
from ai_models.training import (
    TrainingError,
    card_figures,
    chest_case,
    evaluate,
    head_case,
    operating_point,
    train,
)
from datasets.lesions import ParenchymalHaemorrhage, chest_film, head_ct

REGISTRY = Registry.from_file()


def _head_study(slices: list) -> StudyInput:  # type: ignore[type-arg]
    first = slices[0]
    series = SeriesInput(str(first.SeriesInstanceUID), "CT", "HEAD", "Head", tuple(slices))
    return StudyInput(str(first.StudyInstanceUID), "CT", "HEAD", (series,))


def _film_study(ds) -> StudyInput:  # type: ignore[no-untyped-def]
    series = SeriesInput(str(ds.SeriesInstanceUID), str(ds.Modality), "CHEST", "Chest PA", (ds,))
    return StudyInput(str(ds.StudyInstanceUID), str(ds.Modality), "CHEST", (series,))


# ---------------------------------------------------------------- phantoms and their truth


def test_a_haemorrhage_is_blood_dense_on_the_slices_its_truth_names() -> None:
    bleed = ParenchymalHaemorrhage(cx=20.0, cy=0.0, ax=12.0, ay=12.0, t_centre=0.5, t_half=0.12, hu=70.0)
    study = head_ct(seed=5, haemorrhage=True, slices=24, rows=256, cols=256, lesions=[bleed])
    normal = head_ct(seed=5, haemorrhage=False, slices=24, rows=256, cols=256)
    assert study.haemorrhage and not normal.haemorrhage and not any(normal.blood_pixels)
    middle = int(np.argmax(study.blood_pixels))
    assert 9 <= middle <= 14 and study.blood_pixels[0] == 0  # around the middle of the series, not at the vertex
    with_blood = study.slices[middle].pixel_array.astype(np.float32) - 1024
    without = normal.slices[middle].pixel_array.astype(np.float32) - 1024
    changed = np.abs(with_blood - without) > 15
    assert changed.sum() == pytest.approx(study.blood_pixels[middle], rel=0.1)
    assert 60 < float(with_blood[changed].mean()) < 80  # the bleed's density, through noise


def test_the_same_seed_gives_the_same_bleed_and_another_seed_another() -> None:
    one, again = (
        head_ct(seed=11, haemorrhage=True, slices=16, rows=128, cols=128),
        head_ct(seed=11, haemorrhage=True, slices=16, rows=128, cols=128),
    )
    other = head_ct(seed=12, haemorrhage=True, slices=16, rows=128, cols=128)
    assert one.lesions == again.lesions and one.blood_pixels == again.blood_pixels
    assert one.lesions != other.lesions


@pytest.mark.parametrize("label", ["nodule", "pleural_effusion", "pneumothorax"])
def test_a_chest_finding_changes_only_one_lung(label: str) -> None:
    normal = chest_film(seed=21, size=256).dataset.pixel_array.astype(np.float32)
    film = chest_film(seed=21, labels=[label], size=256)
    assert film.labels == {label}
    difference = np.abs(film.dataset.pixel_array.astype(np.float32) - normal) > 40
    left, right = difference[:, :128].sum(), difference[:, 128:].sum()
    assert max(left, right) > 50, (label, left, right)  # visible
    assert min(left, right) < 0.05 * max(left, right)  # on one side


# ---------------------------------------------------------------- the shipped models


def test_the_head_model_finds_the_bleed_on_its_slices_and_boxes_it() -> None:
    model = REGISTRY.load(REGISTRY.get("head-ct-ich"))
    assert isinstance(model, HeadCTHaemorrhage)
    bleed = ParenchymalHaemorrhage(cx=-30.0, cy=10.0, ax=15.0, ay=12.0, t_centre=0.5, t_half=0.12, hu=72.0)
    phantom = head_ct(seed=930_001, haemorrhage=True, slices=24, lesions=[bleed])
    study = _head_study(phantom.slices)
    [finding] = model.findings(study, model.predict(model.prepare(study)))
    assert finding.label == LABEL and finding.positive and finding.suggested_triage == "stat"
    top = [str(ds.SOPInstanceUID) for ds in phantom.slices].index(finding.locations[0].sop_instance_uid)
    assert phantom.blood_pixels[top] > 0, (top, phantom.blood_pixels)
    assert (
        finding.heatmap is not None
        and finding.heatmap.shape == (512, 512)
        and finding.heatmap_of == finding.locations[0].sop_instance_uid
    )
    box = finding.locations[0].box
    assert box is not None
    # The bleed is at x = −30 mm (image left of centre on a 250 mm field): the box covers it.
    column = int((-30.0 + 125.0) / 250.0 * 512)
    assert box[1] <= column <= box[3], box

    normal = _head_study(head_ct(seed=930_002, haemorrhage=False, slices=24).slices)
    [negative] = model.findings(normal, model.predict(model.prepare(normal)))
    assert not negative.positive and negative.heatmap is None and negative.suggested_triage is None


def test_the_chest_model_calls_a_pneumothorax_urgent_with_a_heat_map_over_that_lung() -> None:
    model = REGISTRY.load(REGISTRY.get("chest-dx-triage"))
    assert isinstance(model, ChestTriage)
    film = chest_film(seed=930_003, labels=["pneumothorax"], size=1024)
    study = _film_study(film.dataset)
    findings = {f.label: f for f in model.findings(study, model.predict(model.prepare(study)))}
    ptx = findings["pneumothorax"]
    assert ptx.positive and ptx.suggested_triage == "urgent", ptx.explanation
    assert ptx.heatmap is not None and ptx.heatmap.shape == (1024, 1024)
    assert not findings["nodule"].positive and findings["nodule"].suggested_triage is None


def test_models_refuse_studies_they_do_not_read() -> None:
    head = REGISTRY.load(REGISTRY.get("head-ct-ich"))
    scout = _head_study(head_ct(seed=3, haemorrhage=False, slices=3, rows=64, cols=64).slices)
    with pytest.raises(NotApplicable, match="at least 8 slices"):
        head.prepare(scout)
    chest = REGISTRY.load(REGISTRY.get("chest-dx-triage"))
    lateral = chest_film(seed=4, size=128).dataset
    lateral.ViewPosition = "LL"
    with pytest.raises(NotApplicable, match="no frontal"):
        chest.prepare(_film_study(lateral))


def test_weights_of_another_model_are_refused_by_their_labels(tmp_path: Path) -> None:
    weights = REGISTRY.weights_path(REGISTRY.get("head-ct-ich"))
    assert weights is not None
    with pytest.raises(nets.CheckpointError, match="registry entry lists"):
        nets.load(weights, ("nodule", "pleural_effusion", "pneumothorax"))
    with pytest.raises(nets.CheckpointError, match="not a readable checkpoint"):
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        nets.load(tmp_path / "junk.pt", (LABEL,))


def test_altered_shipped_weights_are_refused_with_the_fix(tmp_path: Path) -> None:
    copy = _registry_copy(tmp_path)
    registry = Registry.from_file(copy)
    entry = registry.get("chest-dx-triage")
    weights = registry.weights_path(entry)
    assert weights is not None
    altered = bytearray(weights.read_bytes())
    altered[len(altered) // 2] ^= 0xFF  # one byte in the middle of the tensors
    weights.write_bytes(bytes(altered))
    with pytest.raises(WeightsError, match=r"were altered: .*yunying ai train chest-dx-triage"):
        registry.load(entry)
    weights.unlink()
    with pytest.raises(WeightsError, match="are missing"):
        registry.load(entry)


# ---------------------------------------------------------------- the cards' figures


@pytest.mark.parametrize(("name", "cases"), [("head-ct-ich", 16), ("chest-dx-triage", 16), ("image-qc", 160)])
def test_eval_on_a_smaller_held_out_set_agrees_with_the_card(name: str, cases: int) -> None:
    entry = REGISTRY.get(name)
    stated = card_figures(REGISTRY.card_path(entry))
    assert set(stated) == set(entry.labels), (
        f"the card of {name} has no figures: run yunying ai eval {name} --write-card"
    )
    result = evaluate(name, DEFAULT_REGISTRY, count=cases)
    for figures in result.labels:
        card = stated[figures.label]
        assert figures.threshold == card["threshold"]  # the card states the registered operating point
        # A smaller set of the same held-out seeds: the same model gives figures close to the card's.
        assert np.isnan(figures.auc) == np.isnan(card["auc"])  # rules state no AUC
        assert np.isnan(card["auc"]) or figures.auc >= card["auc"] - 0.1, (figures, card)
        assert figures.sensitivity >= card["sensitivity"] - 0.25, (figures, card)
        assert figures.specificity >= card["specificity"] - 0.25, (figures, card)


def test_the_operating_point_reaches_the_target_sensitivity() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9], dtype=np.float32)
    truth = np.array([0, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    threshold = operating_point(scores, truth)
    assert 0.3 < threshold <= 0.35  # all four positives called, the first three negatives not


# ---------------------------------------------------------------- training


def _registry_copy(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    shutil.copytree(DEFAULT_REGISTRY.parent / "weights", root / "weights")
    shutil.copytree(DEFAULT_REGISTRY.parent / "cards", root / "cards")
    shutil.copy(DEFAULT_REGISTRY, root / "registry.json")
    return root / "registry.json"


def test_training_writes_weights_and_registers_their_sha256_and_operating_point(tmp_path: Path) -> None:
    path = _registry_copy(tmp_path)
    before = json.loads(path.read_text())
    written = train("head-ct-ich", path, cases_override=6, epochs_override=1, on_line=lambda _: None)
    after = {m["name"]: m for m in json.loads(path.read_text())["models"]}
    assert (
        after["head-ct-ich"]["sha256"]
        == written["sha256"]
        != next(m["sha256"] for m in before["models"] if m["name"] == "head-ct-ich")
    )
    assert after["head-ct-ich"]["thresholds"][LABEL] == written["thresholds"][LABEL]
    assert after["chest-dx-triage"] == next(m for m in before["models"] if m["name"] == "chest-dx-triage")
    assert isinstance(Registry.from_file(path).load(Registry.from_file(path).get("head-ct-ich")), HeadCTHaemorrhage)


def test_rules_are_evaluated_not_trained(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="rule-based: there is nothing to train"):
        train("image-qc", _registry_copy(tmp_path), on_line=lambda _: None)


def test_cases_are_reproducible_from_their_seed() -> None:
    assert chest_case(7, 128).truth == chest_case(7, 128).truth
    one, again = head_case(8, 8), head_case(8, 8)
    assert one.slice_truth == again.slice_truth and one.truth == again.truth


def test_a_head_cases_truth_follows_its_slices_in_the_workers_order() -> None:
    case = next(c for c in (head_case(seed, 16) for seed in range(40, 60)) if c.truth[LABEL])
    instances = case.study.series[0].instances
    positions = [float(ds.ImagePositionPatient[2]) for ds in instances]
    assert positions == sorted(positions)  # the worker's order, not the generator's

    def bloody(ds) -> int:  # type: ignore[no-untyped-def]
        hu = ds.pixel_array.astype(np.float32) - 1024
        return int(((hu > 52) & (hu < 95)).sum())

    top = int(np.argmax(case.slice_truth))
    clear = next(i for i, pixels in enumerate(case.slice_truth) if pixels == 0 and abs(i - top) <= 6)
    assert bloody(instances[top]) > bloody(instances[clear]) + case.slice_truth[top] // 2


def test_the_ai_commands_explain_themselves() -> None:
    yunying = str(Path(sys.executable).parent / "yunying")
    for command, says in (("train", "phantoms"), ("eval", "held-out")):
        result = subprocess.run([yunying, "ai", command, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and says in " ".join(result.stdout.split()), result.stdout
