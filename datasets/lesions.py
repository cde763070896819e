"""Findings painted into the synthetic phantoms, with their ground truth: what the pre-screen
models (``ai_models/models``) are trained and evaluated on.

Head CT: acute intracranial haemorrhage — an intraparenchymal haematoma (a hyperdense
ellipsoid in the brain) or a subdural haematoma (a hyperdense crescent along the inner table
of the skull), 50–85 HU against 30–40 HU brain. Chest film: a nodule or mass (a round
opacity in a lung), a pleural effusion (the lung base replaced by fluid, meniscus rising
laterally) and a pneumothorax (the lung collapsed away from the chest wall: no vessel markings
beyond a thin visceral pleural line).

These are phantoms: geometric shapes with textbook densities. A model trained on them has
learnt these shapes, not the disease; the model cards say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, cast

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from pydicom.dataset import Dataset

from datasets.synthetic import (
    CTLesion,
    PatientSpec,
    StudySpec,
    ct_series,
    radiograph,
    structure_label,
)

__all__ = [
    "CHEST_LABELS",
    "ChestFilm",
    "HeadCT",
    "Nodule",
    "ParenchymalHaemorrhage",
    "PleuralEffusion",
    "Pneumothorax",
    "SubduralHaematoma",
    "chest_film",
    "head_ct",
    "random_chest_findings",
    "random_haemorrhage",
]

ChestLabel = Literal["nodule", "pleural_effusion", "pneumothorax"]
CHEST_LABELS: Final[tuple[ChestLabel, ...]] = ("nodule", "pleural_effusion", "pneumothorax")

# Where blood can lie: the intracranial structures of the head phantom.
_INTRACRANIAL: Final = tuple(structure_label(name) for name in ("csf", "gray_matter", "white_matter", "ventricle"))
_PARENCHYMA: Final = tuple(structure_label(name) for name in ("gray_matter", "white_matter"))


# ---------------------------------------------------------------------------
# Head CT: acute haemorrhage
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParenchymalHaemorrhage:
    """An intraparenchymal haematoma: an ellipsoid of clotted blood in the brain. ``t_centre``
    and ``t_half`` are series fractions (0 vertex, 1 skull base), the rest patient mm."""

    cx: float
    cy: float
    ax: float
    ay: float
    t_centre: float
    t_half: float
    hu: float

    def paint(
        self,
        hu: npt.NDArray[np.float32],
        labels: npt.NDArray[np.uint8],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        t: float,
    ) -> int:
        f = 1.0 - ((t - self.t_centre) / self.t_half) ** 2
        if f <= 0.0:
            return 0
        s = math.sqrt(f)
        inside = ((x[None, :] - self.cx) / (self.ax * s)) ** 2 + ((y[:, None] - self.cy) / (self.ay * s)) ** 2 <= 1.0
        inside &= np.isin(labels, _PARENCHYMA)
        hu[inside] = np.float32(self.hu)
        return int(inside.sum())


@dataclass(frozen=True)
class SubduralHaematoma:
    """A crescent of blood between the skull and the brain on one side (``side`` +1: patient
    left, image right), ``thickness`` mm at its middle, from series fraction ``t0`` to ``t1``."""

    side: int
    thickness: float
    t0: float
    t1: float
    hu: float
    # The crescent's angular middle (radians from the patient's left-right axis) and half-span.
    angle: float = 0.0
    span: float = 1.0

    def paint(
        self,
        hu: npt.NDArray[np.float32],
        labels: npt.NDArray[np.uint8],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        t: float,
    ) -> int:
        if not self.t0 < t < self.t1:
            return 0
        along = math.sin(math.pi * (t - self.t0) / (self.t1 - self.t0))
        cranium = np.isin(labels, _INTRACRANIAL)
        if not cranium.any():
            return 0
        spacing = float(abs(x[1] - x[0]))
        # Distance (mm) of each intracranial pixel from the inner table of the skull.
        distance_map = sitk.SignedMaurerDistanceMap(
            sitk.GetImageFromArray(cranium.astype(np.uint8)),
            insideIsPositive=True,
            squaredDistance=False,
            useImageSpacing=False,
        )
        depth = sitk.GetArrayFromImage(distance_map) * spacing
        # The crescent thins towards its ends, along the arc and along the series.
        angle = np.arctan2(y[:, None], self.side * x[None, :]) - self.angle
        arc = np.clip(1.0 - (angle / self.span) ** 2, 0.0, None)
        inside = cranium & (depth <= self.thickness * along * arc) & (self.side * x[None, :] > 0)
        hu[inside] = np.float32(self.hu)
        return int(inside.sum())


def random_haemorrhage(rng: np.random.Generator) -> CTLesion:
    """A haemorrhage of the kind, size, place and density a township head CT might show:
    two in three intraparenchymal (5–22 mm), one in three subdural (3–10 mm thick)."""
    hu = float(rng.uniform(55.0, 85.0))
    if rng.random() < 2 / 3:
        radius = float(rng.uniform(5.0, 22.0))
        return ParenchymalHaemorrhage(
            cx=float(rng.uniform(-40.0, 40.0)),
            cy=float(rng.uniform(-50.0, 45.0)),
            ax=radius * float(rng.uniform(0.7, 1.3)),
            ay=radius * float(rng.uniform(0.7, 1.3)),
            t_centre=float(rng.uniform(0.3, 0.72)),
            t_half=float(rng.uniform(0.06, 0.16)),
            hu=hu,
        )
    t0 = float(rng.uniform(0.12, 0.45))
    return SubduralHaematoma(
        side=int(rng.choice([-1, 1])),
        thickness=float(rng.uniform(3.0, 10.0)),
        t0=t0,
        t1=min(0.85, t0 + float(rng.uniform(0.2, 0.4))),
        hu=hu,
        angle=float(rng.uniform(-0.6, 0.6)),
        span=float(rng.uniform(0.7, 1.3)),
    )


class _Recorder:
    """Wraps a lesion and remembers how many pixels it painted at each series fraction."""

    def __init__(self, lesion: CTLesion) -> None:
        self.lesion = lesion
        self.painted: dict[float, int] = {}

    def paint(
        self,
        hu: npt.NDArray[np.float32],
        labels: npt.NDArray[np.uint8],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        t: float,
    ) -> int:
        count = self.lesion.paint(hu, labels, x, y, t)
        self.painted[t] = self.painted.get(t, 0) + count
        return count


@dataclass(frozen=True)
class HeadCT:
    """A non-contrast head CT and its truth: the pixels of blood on each slice (0: none)."""

    slices: list[Dataset]
    blood_pixels: tuple[int, ...]
    lesions: tuple[CTLesion, ...] = field(default=())

    @property
    def haemorrhage(self) -> bool:
        return any(self.blood_pixels)


def head_ct(
    *,
    seed: int,
    haemorrhage: bool,
    slices: int = 32,
    rows: int = 512,
    cols: int = 512,
    study_uid: str | None = None,
    patient: PatientSpec | None = None,
    study: StudySpec | None = None,
    lesions: Sequence[CTLesion] | None = None,
) -> HeadCT:
    """A head CT of the phantom seeded ``seed``, with a random haemorrhage when asked (or the
    given ``lesions``). The same seed gives the same study, bleed included."""
    rng = np.random.default_rng([seed, 7301])
    if lesions is None:
        lesions = [random_haemorrhage(rng)] if haemorrhage else []
    recorders = [_Recorder(lesion) for lesion in lesions]
    datasets = ct_series(
        "head",
        slices,
        seed=seed,
        rows=rows,
        cols=cols,
        study_uid=study_uid,
        patient=patient,
        study=study,
        lesions=recorders,
    )
    fractions = [i / (slices - 1) if slices > 1 else 0.5 for i in range(slices)]
    blood = tuple(sum(r.painted.get(t, 0) for r in recorders) for t in fractions)
    return HeadCT(datasets, blood, tuple(lesions))


# ---------------------------------------------------------------------------
# Chest film: nodule, pleural effusion, pneumothorax
# ---------------------------------------------------------------------------


def _lung_side(lungs: npt.NDArray[np.float32], u: npt.NDArray[np.float32], side: int) -> npt.NDArray[np.bool_]:
    """The pixels of one lung (``side`` −1: image left, +1: image right)."""
    mask = lungs > 0.02
    mask &= (u * side > 0)[None, :]
    return mask


def _one_lung(
    lungs: npt.NDArray[np.float32], u: npt.NDArray[np.float32], side: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]] | None:
    """One lung's pixels and the rows it spans; ``None`` when the film shows none (a tiny film)."""
    lung = _lung_side(lungs, u, side)
    rows = cast(npt.NDArray[np.intp], np.flatnonzero(lung.any(axis=1)))
    return (lung, rows) if rows.size else None


@dataclass(frozen=True)
class Nodule:
    """A round opacity in one lung: ``fx``/``fy`` place it across (medial 0 → lateral 1) and
    down (apex 0 → base 1) the lung, ``radius`` in image half-widths, ``density`` its
    thickness in the film's units (ribs are 0.18)."""

    side: int
    fx: float
    fy: float
    radius: float
    density: float

    def apply(
        self,
        body: npt.NDArray[np.float32],
        lungs: npt.NDArray[np.float32],
        vessels: npt.NDArray[np.float32],
        u: npt.NDArray[np.float32],
        v: npt.NDArray[np.float32],
    ) -> None:
        found = _one_lung(lungs, u, self.side)
        if found is None:
            return
        lung, rows = found
        row = int(rows[0] + self.fy * (rows[-1] - rows[0]))
        cols = np.flatnonzero(lung[row])
        if cols.size == 0:
            return
        medial, lateral = (cols[0], cols[-1]) if self.side > 0 else (cols[-1], cols[0])
        col = round(medial + self.fx * (lateral - medial))
        cu, cv = float(u[col]), float(v[row])
        # u spans the film's width in −1…1, v its height in 0…1: a round nodule is half as tall in v.
        r2 = ((u[None, :] - cu) / self.radius) ** 2 + ((v[:, None] - cv) / (self.radius / 2)) ** 2
        # Added to the body so that it shows through the lung's air.
        body += np.float32(self.density) * np.sqrt(np.clip(1.0 - r2, 0.0, None)).astype(np.float32)


@dataclass(frozen=True)
class PleuralEffusion:
    """Fluid filling the lower ``level`` (fraction of the lung's height) of one lung, with
    a meniscus rising towards the chest wall."""

    side: int
    level: float

    def apply(
        self,
        body: npt.NDArray[np.float32],
        lungs: npt.NDArray[np.float32],
        vessels: npt.NDArray[np.float32],
        u: npt.NDArray[np.float32],
        v: npt.NDArray[np.float32],
    ) -> None:
        found = _one_lung(lungs, u, self.side)
        if found is None:
            return
        lung, rows = found
        top, bottom = float(v[rows[0]]), float(v[rows[-1]])
        surface = bottom - self.level * (bottom - top)
        lateral = np.abs(u)[None, :]
        # The meniscus: higher at the chest wall (|u| large) than medially.
        line = surface - 0.25 * self.level * np.clip((lateral - 0.1) / 0.7, 0.0, 1.0)
        depth = (v[:, None] - line) / 0.02
        fluid = np.clip(depth, 0.0, 1.0) * lung
        lungs *= (1.0 - fluid).astype(np.float32)


@dataclass(frozen=True)
class Pneumothorax:
    """One lung collapsed away from the chest wall by ``size`` (fraction of its width): air
    without markings laterally and at the apex, the visceral pleura a thin white line."""

    side: int
    size: float

    def apply(
        self,
        body: npt.NDArray[np.float32],
        lungs: npt.NDArray[np.float32],
        vessels: npt.NDArray[np.float32],
        u: npt.NDArray[np.float32],
        v: npt.NDArray[np.float32],
    ) -> None:
        found = _one_lung(lungs, u, self.side)
        if found is None:
            return
        lung, rows = found
        height = rows[-1] - rows[0]
        outer = u[None, :] * self.side  # distance from the midline, on this side
        edge_in = np.where(lung, outer, np.inf).min(axis=1)
        edge_out = np.where(lung, outer, -np.inf).max(axis=1)
        width = np.clip(edge_out - edge_in, 0.0, None)
        # The collapsed lung's lateral border, receding further at the apex.
        apex = np.clip(1.0 - (np.arange(len(v)) - rows[0]) / max(1.0, 0.35 * height), 0.0, 1.0)
        pleura = edge_out - width * np.clip(self.size + 0.5 * apex * self.size, 0.0, 0.85)
        beyond = lung & (outer > pleura[:, None])
        line = lung & (np.abs(outer - pleura[:, None]) < 0.006)
        vessels[beyond] = 0.0
        # Air in the pleural space, no lung tissue: a little darker than aerated lung.
        lungs[beyond] += np.float32(0.08)
        body[line] += np.float32(0.05)


def random_chest_findings(
    rng: np.random.Generator, labels: Sequence[ChestLabel]
) -> list[Nodule | PleuralEffusion | Pneumothorax]:
    """A random instance of each finding named in ``labels`` (sizes a township film shows:
    a nodule of 8–35 mm, an effusion from blunting to a third of the lung, a 15–45 % pneumothorax)."""
    made: list[Nodule | PleuralEffusion | Pneumothorax] = []
    for label in labels:
        side = int(rng.choice([-1, 1]))
        if label == "nodule":
            made.append(
                Nodule(
                    side=side,
                    fx=float(rng.uniform(0.25, 0.8)),
                    fy=float(rng.uniform(0.2, 0.75)),
                    radius=float(rng.uniform(0.035, 0.09)),
                    density=float(rng.uniform(0.1, 0.25)),
                )
            )
        elif label == "pleural_effusion":
            made.append(PleuralEffusion(side=side, level=float(rng.uniform(0.15, 0.4))))
        elif label == "pneumothorax":
            made.append(Pneumothorax(side=side, size=float(rng.uniform(0.18, 0.45))))
        else:
            raise ValueError(f"unknown chest finding {label!r}; expected one of {CHEST_LABELS}")
    return made


@dataclass(frozen=True)
class ChestFilm:
    """A PA chest film and the findings painted into it."""

    dataset: Dataset
    labels: frozenset[ChestLabel]


def chest_film(
    *,
    seed: int,
    labels: Sequence[ChestLabel] = (),
    size: int = 2048,
    modality: Literal["DX", "CR"] = "DX",
    study_uid: str | None = None,
    patient: PatientSpec | None = None,
    study: StudySpec | None = None,
    photometric: Literal["MONOCHROME2", "MONOCHROME1"] = "MONOCHROME2",
) -> ChestFilm:
    """A chest film of the phantom seeded ``seed`` showing ``labels``. The same seed and
    labels give the same film."""
    rng = np.random.default_rng([seed, 7302])
    findings = random_chest_findings(rng, labels)
    ds = radiograph(
        modality,
        seed=seed,
        size=size,
        study_uid=study_uid,
        patient=patient,
        study=study,
        photometric=photometric,
        lesions=findings,
    )
    return ChestFilm(ds, frozenset(labels))
