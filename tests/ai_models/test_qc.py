"""Each QC rule on data made to trigger it and on normal data that must not (synthetic
phantoms from datasets/synthetic.py, altered the way real studies go wrong)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
from pydicom.dataset import Dataset

from ai_models import qc
from ai_models.anatomy import body_parts_named
from ai_models.contract import SeriesInput, StudyInput
from ai_models.geometry import sorted_along_normal
from ai_models.registry import Registry
from ai_models.training import set_hounsfield
from datasets import synthetic

Check = Callable[[SeriesInput], qc.Problem | None]


def _ct(kind: str = "head", slices: int = 8, size: int = 48, seed: int = 4) -> list[Dataset]:
    return synthetic.ct_series(kind, slices, seed=seed, rows=size, cols=size)  # type: ignore[arg-type]


def _series(
    instances: list[Dataset], *, description: str | None = "Head 5mm", body_part: str | None = "HEAD"
) -> SeriesInput:
    first = instances[0]
    modality = str(first.Modality)
    ordered = sorted_along_normal(instances) if modality == "CT" else tuple(instances)
    return SeriesInput(str(first.SeriesInstanceUID), modality, body_part, description, ordered)


NORMAL_CT = _series(_ct())
NORMAL_ABDOMEN = _series(_ct("abdomen"), description="腹部CT平扫", body_part="ABDOMEN")
NORMAL_DX = _series([synthetic.radiograph("DX", seed=4, size=128)], description="胸部正位", body_part="CHEST")


@pytest.mark.parametrize("check", [rule.check for rule in qc.RULES], ids=[rule.name for rule in qc.RULES])
def test_normal_studies_pass_every_rule(check: Check) -> None:
    for series in (NORMAL_CT, NORMAL_ABDOMEN, NORMAL_DX):
        assert check(series) is None, (series.description, check(series))


def test_missing_slices() -> None:
    slices = _ct()
    del slices[4]  # one slice lost in transfer
    problem = qc.check_missing_slices(_series(slices))
    assert problem is not None and "about 1 slice(s) missing" in problem.explanation
    assert qc.check_slice_spacing(_series(slices)) is None  # a whole missing slice is not "uneven"


def test_inconsistent_slice_spacing() -> None:
    slices = _ct()
    position = list(slices[3].ImagePositionPatient)
    position[2] = float(position[2]) + 2.0  # 40 % of a 5 mm step off
    slices[3].ImagePositionPatient = position
    problem = qc.check_slice_spacing(_series(slices))
    assert problem is not None and "step(s) differ" in problem.explanation
    assert qc.check_missing_slices(_series(slices)) is None


@pytest.mark.parametrize(
    ("header", "description", "expected"),
    [
        ("CHEST", "头颅CT平扫", "Body Part Examined is CHEST but the description names HEAD"),
        ("HEAD", "Abdomen routine", "Body Part Examined is HEAD but the description names ABDOMEN"),
        (None, "Routine 5mm", "the body part is unknown"),
    ],
)
def test_wrong_or_unknown_body_part(header: str | None, description: str, expected: str) -> None:
    problem = qc.check_body_part(_series(_ct(), description=description, body_part=header))
    assert problem is not None and expected in problem.explanation


def test_body_part_words_in_chinese_and_english() -> None:
    assert body_parts_named("头颅CT平扫") == {"HEAD"}
    assert body_parts_named("胸部正位片") == {"CHEST"}
    assert body_parts_named("上腹部增强") == {"ABDOMEN"}
    assert body_parts_named("Chest PA") == {"CHEST"}
    assert body_parts_named("颈椎正侧位") == {"SPINE"}
    assert body_parts_named("Forehead lesion") == set()  # HEAD only as a word of its own
    assert qc.check_body_part(_series(_ct(), description=None, body_part="HEAD")) is None


def test_truncated_field_of_view() -> None:
    slices = _ct("abdomen")
    for ds in slices:
        hu = qc.hounsfield(ds)
        hu[:, :6] = 40.0  # soft tissue running off the left edge: the patient was cut off
        set_hounsfield(ds, hu)
    problem = qc.check_truncated_fov(_series(slices, description="腹部", body_part="ABDOMEN"))
    assert problem is not None and "touches the image edge on 8 of 8 slices" in problem.explanation


def test_a_noisy_scan_is_noisy_not_truncated() -> None:
    # Found by the phantom evaluation: σ 400 HU lifts one air pixel in ten above −500 HU.
    rng = np.random.default_rng(2)
    slices = _ct("abdomen")
    for ds in slices:
        set_hounsfield(ds, qc.hounsfield(ds) + rng.normal(0, 400, (48, 48)))
    series = _series(slices, description="腹部", body_part="ABDOMEN")
    assert qc.check_noise(series) is not None and qc.check_truncated_fov(series) is None


def test_extreme_noise_ct_and_radiograph() -> None:
    rng = np.random.default_rng(1)
    slices = _ct()
    for ds in slices:
        set_hounsfield(ds, qc.hounsfield(ds) + rng.normal(0, 200, (48, 48)))
    problem = qc.check_noise(_series(slices))
    assert problem is not None and "HU in soft tissue" in problem.explanation

    film = copy.deepcopy(NORMAL_DX.instances[0])
    pixels = film.pixel_array.astype(float)
    spread = np.percentile(pixels, 99) - np.percentile(pixels, 1)
    film.PixelData = np.clip(pixels + rng.normal(0, 0.3 * spread, pixels.shape), 0, 2**14 - 1).astype("<u2").tobytes()
    assert qc.check_noise(_series([film], description="Chest PA", body_part="CHEST")) is not None


def test_saturation_ct_and_radiograph() -> None:
    slices = _ct()
    hu = qc.hounsfield(slices[0])
    hu[10:30, 10:30] = 3071.0  # the reconstruction clipped
    set_hounsfield(slices[0], hu)
    problem = qc.check_saturation(_series(slices))
    assert problem is not None and "3071 HU ceiling" in problem.explanation

    film = copy.deepcopy(NORMAL_DX.instances[0])
    pixels = film.pixel_array.copy()
    pixels[: pixels.shape[0] // 2] = 2**14 - 1  # half the detector burnt out
    film.PixelData = pixels.astype("<u2").tobytes()
    assert qc.check_saturation(_series([film], description="Chest PA", body_part="CHEST")) is not None


def test_orientation_flips() -> None:
    mirrored = _ct()
    for ds in mirrored:
        ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
    problem = qc.check_orientation(_series(mirrored))
    assert problem is not None and "mirrored left–right" in problem.explanation

    shuffled = _ct()
    shuffled[2].InstanceNumber, shuffled[5].InstanceNumber = shuffled[5].InstanceNumber, shuffled[2].InstanceNumber
    problem = qc.check_orientation(_series(shuffled))
    assert problem is not None and "instance numbers do not follow the slice positions" in problem.explanation

    film = copy.deepcopy(NORMAL_DX.instances[0])
    film.PatientOrientation = ["R", "F"]
    problem = qc.check_orientation(_series([film], description="Chest PA", body_part="CHEST"))
    assert problem is not None and "mirrored" in problem.explanation


def test_the_qc_model_gives_one_finding_per_rule_explained() -> None:
    slices = _ct()
    del slices[4]
    series = _series(slices)
    study = StudyInput("1.2.3", "CT", "HEAD", (series,))
    model = qc.ImageQC(Registry.from_file().get("image-qc"))
    findings = {f.label: f for f in model.findings(study, model.predict(model.prepare(study)))}
    assert set(findings) == {rule.name for rule in qc.RULES}
    missing = findings["qc.missing_slices"]
    assert missing.positive and missing.probability is None and missing.suggested_triage is None
    assert missing.locations and "ask the site to resend" in missing.explanation
    assert not findings["qc.noise"].positive and findings["qc.noise"].explanation == "no extreme noise found"
