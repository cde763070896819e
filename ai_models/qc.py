"""Rule-based image QC for every CT and radiograph study: is this study technically fit to
read? Each rule is named (``qc.<rule>``), says in its finding what it saw and where, and is a
plain function of one series, so it is unit-tested on data made to trigger it and data that
must not. A registry entry of kind ``rules`` (no weights) runs them as a ``Model``.

The rules only read headers and pixels already handed over (``StudyInput``); thresholds are
deliberately loose — QC flags what would waste a reader's time, not every imperfection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from ai_models.anatomy import body_parts_named, canonical_body_part
from ai_models.contract import Finding, Location, SeriesInput, StudyInput
from ai_models.geometry import slice_positions
from ai_models.registry import RegistryEntry

CT: Final = "CT"
RADIOGRAPHY: Final = frozenset({"DX", "CR"})

# Slice spacing: a gap this much larger than the usual one is a missing slice (1.5: halfway
# to two slices), any other departure beyond 10 % (or 0.1 mm) is an inconsistent spacing.
MISSING_GAP_RATIO: Final = 1.5
SPACING_TOLERANCE: Final = 0.10
# Truncated field of view: a slice whose body (above −500 HU) covers more than this share of
# any image edge, on at least this share of the slices.
EDGE_BODY_SHARE: Final = 0.10
TRUNCATED_SLICE_SHARE: Final = 0.20
# Noise: the robust standard deviation of the high-pass residual in soft tissue (−100…100 HU);
# diagnostic CT sits at 5–25 HU, a low-dose head at ~40; above this nothing small is visible.
CT_NOISE_HU: Final = 80.0
# Radiograph noise, as a share of the image's 1–99 % value range.
XR_NOISE_SHARE: Final = 0.06
# Saturation: CT pixels at the 12-bit ceiling (3071 HU) — metal streaks aside, more than this
# share of the body means the reconstruction clipped; radiograph pixels at either end of the
# stored range over this share of the image mean an over- or under-exposed detector.
CT_CEILING_HU: Final = 3071.0
CT_SATURATED_SHARE: Final = 0.02
XR_SATURATED_SHARE: Final = 0.30


@dataclass(frozen=True)
class Problem:
    """What one rule found wrong in one series: a sentence and the instances concerned."""

    explanation: str
    sop_instance_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str  # the finding label: qc.<name>
    title: str  # what it checks, for the card and the SR
    modalities: frozenset[str]
    check: Callable[[SeriesInput], Problem | None]


def hounsfield(ds: Dataset) -> npt.NDArray[np.float32]:
    """A CT slice in HU (PS3.3 C.11.1.1.2: stored value × slope + intercept)."""
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _uids(instances: tuple[Dataset, ...], indices: list[int]) -> tuple[str, ...]:
    return tuple(str(instances[i].SOPInstanceUID) for i in indices)


def check_slice_spacing(series: SeriesInput) -> Problem | None:
    """Departures from the usual slice spacing other than whole missing slices (overlapping or
    uneven reconstruction, slices of two acquisitions mixed in one series)."""
    gaps = _gaps(series)
    if gaps is None:
        return None
    steps, usual = gaps
    odd = [i for i, step in enumerate(steps) if _uneven(step, usual) and step < usual * MISSING_GAP_RATIO]
    if not odd:
        return None
    shown = ", ".join(f"{steps[i]:.2f} mm after slice {i + 1}" for i in odd[:3])
    return Problem(
        f"series {series.description or series.series_uid}: slice spacing is {usual:.2f} mm but {len(odd)} "
        f"step(s) differ ({shown}); measurements along the slice axis are unreliable",
        _uids(series.instances, [i + 1 for i in odd]),
    )


def check_missing_slices(series: SeriesInput) -> Problem | None:
    """Gaps of one or more whole slices (ImagePositionPatient): slices lost in transfer or
    never sent — a lesion may lie in the gap."""
    gaps = _gaps(series)
    if gaps is None:
        return None
    steps, usual = gaps
    missing = [(i, round(step / usual) - 1) for i, step in enumerate(steps) if step >= usual * MISSING_GAP_RATIO]
    if not missing:
        return None
    count = sum(max(n, 1) for _, n in missing)
    shown = ", ".join(f"after slice {i + 1} ({steps[i]:.1f} mm gap)" for i, _ in missing[:3])
    return Problem(
        f"series {series.description or series.series_uid}: about {count} slice(s) missing at a spacing of "
        f"{usual:.2f} mm: {shown}; ask the site to resend the series",
        _uids(series.instances, [i for i, _ in missing]),
    )


def _gaps(series: SeriesInput) -> tuple[list[float], float] | None:
    if series.modality != CT or len(series.instances) < 3:
        return None
    positions = slice_positions(series.instances)
    if positions is None:
        return None
    steps = [abs(b - a) for a, b in pairwise(positions)]
    usual = float(np.median(steps))
    if usual <= 1e-3:
        return None  # stacked at one position: the orientation rule reports it
    return steps, usual


def _uneven(step: float, usual: float) -> bool:
    return abs(step - usual) > max(0.1, SPACING_TOLERANCE * usual)


def check_body_part(series: SeriesInput) -> Problem | None:
    """Body Part Examined against what the series description says (头颅/HEAD, 胸部/CHEST…):
    a wrong or empty body part routes the study to the wrong reader and the wrong models."""
    header = canonical_body_part(series.body_part)
    named = body_parts_named(series.description)
    if header is None and not named:
        return Problem(
            f"series {series.description or series.series_uid}: no Body Part Examined and a description "
            f"({series.description or 'none'!r}) naming no body part: the body part is unknown"
        )
    if header is not None and named and header not in named:
        return Problem(
            f"series {series.description!r}: Body Part Examined is {header} but the description names "
            f"{'/'.join(sorted(named))}: one of them is wrong"
        )
    return None


def check_truncated_fov(series: SeriesInput) -> Problem | None:
    """The body touching the image edge on many slices: the field of view cut part of the
    patient off (reconstruction diameter too small, patient off centre)."""
    if series.modality != CT or not series.instances:
        return None
    cut = [index for index, ds in enumerate(series.instances) if _edge_body_share(hounsfield(ds)) > EDGE_BODY_SHARE]
    if len(cut) < max(1, TRUNCATED_SLICE_SHARE * len(series.instances)):
        return None
    return Problem(
        f"series {series.description or series.series_uid}: the body touches the image edge on {len(cut)} of "
        f"{len(series.instances)} slices: the field of view is truncated, anatomy outside it is not imaged",
        _uids(series.instances, cut[:5]),
    )


def check_noise(series: SeriesInput) -> Problem | None:
    """Extreme image noise (robust residual deviation): too low a dose or a broken detector."""
    if not series.instances:
        return None
    picks = _sample(len(series.instances))
    if series.modality == CT:
        levels = [_ct_noise(hounsfield(series.instances[i])) for i in picks]
        level = float(np.median(levels))
        if level <= CT_NOISE_HU:
            return None
        what = f"noise of about {level:.0f} HU in soft tissue (limit {CT_NOISE_HU:.0f})"
    else:
        pixels = series.instances[0].pixel_array.astype(np.float32)
        low, high = np.percentile(pixels, [1.0, 99.0])
        level = _residual_sigma(pixels) / max(float(high - low), 1.0)
        if level <= XR_NOISE_SHARE:
            return None
        what = f"noise at {level:.0%} of the image's value range (limit {XR_NOISE_SHARE:.0%})"
    return Problem(
        f"series {series.description or series.series_uid}: {what}; small findings cannot be seen",
        _uids(series.instances, picks[:1]),
    )


def check_saturation(series: SeriesInput) -> Problem | None:
    """Pixels stuck at the end of the value range: a clipped reconstruction or an over/under-
    exposed radiograph, where nothing can be seen."""
    if not series.instances:
        return None
    if series.modality == CT:
        shares = []
        for i in _sample(len(series.instances)):
            hu = hounsfield(series.instances[i])
            body = hu > -500
            shares.append(float((hu[body] >= CT_CEILING_HU).mean()) if body.any() else 0.0)
        share = max(shares)
        if share <= CT_SATURATED_SHARE:
            return None
        what = f"{share:.0%} of the body at the {CT_CEILING_HU:.0f} HU ceiling"
    else:
        ds = series.instances[0]
        pixels = ds.pixel_array
        top = 2 ** int(getattr(ds, "BitsStored", 16)) - 1
        share = float(np.mean((pixels == 0) | (pixels >= top)))
        if share <= XR_SATURATED_SHARE:
            return None
        what = f"{share:.0%} of the image at the end of the stored value range (0 or {top})"
    return Problem(f"series {series.description or series.series_uid}: {what}: saturated, nothing visible there")


def check_orientation(series: SeriesInput) -> Problem | None:
    """Orientation flips: slices of one series in different orientations, mirrored or upside-
    down axes, or instance numbers against the slice order (a viewer that stacks by number
    then scrambles the volume); for radiographs, Patient Orientation showing a mirrored or
    upside-down film."""
    if series.modality in RADIOGRAPHY:
        return _radiograph_orientation(series)
    if series.modality != CT or not series.instances:
        return None
    orientations = {
        tuple(round(float(v), 3) for v in getattr(ds, "ImageOrientationPatient", ())) for ds in series.instances
    }
    problems = []
    if len(orientations) > 1:
        problems.append(f"{len(orientations)} different ImageOrientationPatient values in one series")
    first = next(iter(orientations))
    if len(first) == 6 and abs(first[2]) < 0.5 and abs(first[5]) < 0.5:  # an axial slice
        if first[0] < -0.5:
            problems.append("rows run to the patient's right (mirrored left–right)")
        if first[4] < -0.5:
            problems.append("columns run anterior (upside down)")
    positions = slice_positions(series.instances)
    numbers = [getattr(ds, "InstanceNumber", None) for ds in series.instances]
    if positions is not None and len(set(positions)) < len(positions):
        problems.append("several slices share one position")
    if None not in numbers and len(numbers) >= 3:
        order = np.diff(np.asarray(numbers, float))
        if not (np.all(order > 0) or np.all(order < 0)):
            problems.append("instance numbers do not follow the slice positions")
    if not problems:
        return None
    return Problem(f"series {series.description or series.series_uid}: " + "; ".join(problems))


def _radiograph_orientation(series: SeriesInput) -> Problem | None:
    orientation = getattr(series.instances[0], "PatientOrientation", None) if series.instances else None
    if not orientation or len(orientation) != 2:
        return None
    columns, rows = str(orientation[0]), str(orientation[1])
    # PS3.3 C.7.6.1.1.1: a frontal chest film is shown as if facing the patient — columns
    # toward the patient's left (L), rows toward the feet (F).
    problems = []
    if "R" in columns:
        problems.append(f"columns run to the patient's right ({columns}): the film is mirrored")
    if "H" in rows:
        problems.append(f"rows run toward the head ({rows}): the film is upside down")
    if not problems:
        return None
    return Problem(f"series {series.description or series.series_uid}: " + "; ".join(problems))


def _edge_body_share(hu: npt.NDArray[np.float32]) -> float:
    """The largest share of an image edge that is body (> −500 HU), judged on the 3×3 median
    of the outermost three pixels: a noisy scan's air has single pixels above −500 HU (σ 400 HU
    puts one in ten there: phantom evaluation, ai_models/cards/image-qc.md), a cut-off patient a
    band of tissue."""
    if min(hu.shape) < 3:
        return 0.0
    shares = []
    for strip in (hu[:3, :], hu[-3:, :], hu[:, :3].T, hu[:, -3:].T):
        padded = np.pad(strip, ((0, 0), (1, 1)), mode="edge")
        window = np.stack([padded[r, c : c + strip.shape[1]] for r in range(3) for c in range(3)])
        shares.append(float((np.median(window, axis=0) > -500).mean()))
    return max(shares)


def _sample(count: int, most: int = 12) -> list[int]:
    """Up to ``most`` evenly spread slice indices: noise and saturation are series-wide."""
    return sorted({int(i) for i in np.linspace(0, count - 1, num=min(count, most))})


def _residual_sigma(image: npt.NDArray[np.float32], *, soft_tissue: bool = False) -> float:
    """Robust σ of the image minus its 3×3 mean (MAD × 1.4826, scaled for the 3×3 filter);
    ``soft_tissue``: only where the local mean is −100…100 HU (the mask is taken on the mean,
    so the noise itself does not push pixels out of it and hide how large it is)."""
    padded = np.pad(image, 1, mode="edge")
    mean = sum(padded[r : r + image.shape[0], c : c + image.shape[1]] for r in range(3) for c in range(3)) / 9.0
    residual = image - mean
    if soft_tissue:
        residual = residual[(mean > -100) & (mean < 100)]
    if residual.size < 100:
        return 0.0
    mad = float(np.median(np.abs(residual - np.median(residual))))
    # For white noise, image − 3×3 mean has σ·√(8/9): undo that factor.
    return mad * 1.4826 / float(np.sqrt(8.0 / 9.0))


def _ct_noise(hu: npt.NDArray[np.float32]) -> float:
    return _residual_sigma(hu, soft_tissue=True)


RULES: Final[tuple[Rule, ...]] = (
    Rule("qc.slice_spacing", "inconsistent slice spacing", frozenset({CT}), check_slice_spacing),
    Rule("qc.missing_slices", "missing slices", frozenset({CT}), check_missing_slices),
    Rule("qc.body_part", "wrong or unknown body part", frozenset({CT}) | RADIOGRAPHY, check_body_part),
    Rule("qc.truncated_fov", "truncated field of view", frozenset({CT}), check_truncated_fov),
    Rule("qc.noise", "extreme noise", frozenset({CT}) | RADIOGRAPHY, check_noise),
    Rule("qc.saturation", "saturation", frozenset({CT}) | RADIOGRAPHY, check_saturation),
    Rule("qc.orientation", "orientation flips", frozenset({CT}) | RADIOGRAPHY, check_orientation),
)


class ImageQC:
    """The QC rules as a ``Model`` (``ai_models/contract.py``): one finding per rule and study,
    positive when any series breaks it. Never raises ``NotApplicable`` for CT/DX/CR."""

    def __init__(self, entry: RegistryEntry, weights: Path | None = None) -> None:
        self.name = entry.name
        self.version = entry.version

    def prepare(self, study: StudyInput) -> StudyInput:
        return study

    def predict(self, prepared: StudyInput) -> dict[str, list[Problem]]:
        found: dict[str, list[Problem]] = {}
        for rule in RULES:
            problems = [
                problem
                for series in prepared.series
                if series.modality in rule.modalities and (problem := rule.check(series)) is not None
            ]
            if any(series.modality in rule.modalities for series in prepared.series):
                found[rule.name] = problems
        return found

    def findings(self, study: StudyInput, prediction: dict[str, list[Problem]]) -> list[Finding]:
        titles = {rule.name: rule.title for rule in RULES}
        result = []
        for label, problems in prediction.items():
            explanation = " ".join(p.explanation for p in problems) if problems else f"no {titles[label]} found"
            uids = [uid for p in problems for uid in p.sop_instance_uids]
            result.append(
                Finding(
                    model=self.name,
                    version=self.version,
                    label=label,
                    probability=None,
                    positive=bool(problems),
                    explanation=explanation,
                    locations=tuple(Location(uid) for uid in dict.fromkeys(uids)),
                )
            )
        return result
