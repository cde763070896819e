"""Training and evaluating the project's own models on generated phantoms (``yunying ai train``
and ``yunying ai eval``). Build-time code: it imports ``datasets`` (the phantoms), which the
running service never does.

Three disjoint seed ranges keep the sets apart: training films and studies from
``TRAIN_SEED``, the validation set that picks each label's operating point from
``VALIDATION_SEED``, and the held-out evaluation set from ``EVAL_SEED``. The operating point is
the threshold with the best Youden index among those reaching ``TARGET_SENSITIVITY`` on the
validation set (a triage tool would rather over-call than miss), the middle one of a tie.

Evaluation runs the registered model through the same ``prepare → predict → findings`` the
worker runs, on DICOM data sets the generator writes, and computes AUC (MONAI), sensitivity
and specificity at the registered operating point; ``--write-card`` puts them into the card.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import torch
from monai.metrics.rocauc import compute_roc_auc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ai_models import qc
from ai_models.contract import SeriesInput, StudyInput
from ai_models.geometry import sorted_along_normal
from ai_models.models import chest_dx, head_ct, nets
from ai_models.registry import Registry, RegistryEntry, file_sha256
from datasets import synthetic
from datasets.lesions import CHEST_LABELS, ChestLabel, chest_film
from datasets.lesions import head_ct as head_ct_phantom

TRAIN_SEED: Final = 100_000
VALIDATION_SEED: Final = 500_000
EVAL_SEED: Final = 900_000
TARGET_SENSITIVITY: Final = 0.9
CARD_BEGIN: Final = "<!-- yunying-ai-eval:begin -->"
CARD_END: Final = "<!-- yunying-ai-eval:end -->"
# A slice is a training positive when its blood covers this many pixels of a 512² grid
# (~15 mm²); a slice with a sliver of blood (the edge of a bleed) is left out of training.
_BLOOD_PIXELS_512: Final = 60


@dataclass(frozen=True)
class Recipe:
    """How one model is trained and evaluated (defaults: what the shipped weights used)."""

    model: str
    train_cases: int
    validation_cases: int
    eval_cases: int
    epochs: int
    batch: int
    learning_rate: float
    # chest: film sizes drawn for training; head: slices per study drawn for training.
    sizes: tuple[int, ...]
    eval_size: int


RECIPES: Final[dict[str, Recipe]] = {
    "chest-dx-triage": Recipe("chest-dx-triage", 1200, 120, 120, 30, 32, 2e-3, (512, 512, 768, 1024), 2048),
    "head-ct-ich": Recipe("head-ct-ich", 160, 40, 60, 10, 32, 2e-3, tuple(range(20, 50, 2)), 32),
    # Rules: nothing to train; evaluated on phantoms with one defect each (or none).
    "image-qc": Recipe("image-qc", 0, 0, 160, 0, 0, 0.0, (64,), 64),
}


class TrainingError(Exception):
    """The model cannot be trained or evaluated as asked; the message says why."""


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise TrainingError(f"no training recipe for {name!r}: the project trains {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------
# Cases: what the generator makes, as the worker would see it
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One generated study: the StudyInput the worker would build and its truth."""

    study: StudyInput
    truth: dict[str, bool]
    slice_truth: tuple[int, ...] = ()  # head CT: blood pixels per slice
    grid: int = 512


def _chest_labels(rng: np.random.Generator) -> list[ChestLabel]:
    return [label for label in CHEST_LABELS if rng.random() < 0.35]


def chest_case(seed: int, size: int) -> Case:
    """A chest film with each finding present with probability 0.35, drawn from ``seed``."""
    rng = np.random.default_rng([seed, 1])
    labels = _chest_labels(rng)
    modality: Literal["DX", "CR"] = "CR" if rng.random() < 0.3 else "DX"
    photometric: Literal["MONOCHROME1", "MONOCHROME2"] = "MONOCHROME1" if rng.random() < 0.15 else "MONOCHROME2"
    film = chest_film(seed=seed, labels=labels, size=size, modality=modality, photometric=photometric)
    ds = film.dataset
    series = SeriesInput(str(ds.SeriesInstanceUID), modality, "CHEST", str(ds.SeriesDescription), (ds,))
    study = StudyInput(str(ds.StudyInstanceUID), modality, "CHEST", (series,))
    return Case(study, {label: label in film.labels for label in CHEST_LABELS}, grid=size)


def head_case(seed: int, slices: int) -> Case:
    """A 512² head CT, a haemorrhage in three of five, drawn from ``seed``."""
    rng = np.random.default_rng([seed, 2])
    phantom = head_ct_phantom(seed=seed, haemorrhage=bool(rng.random() < 0.6), slices=slices)
    # The worker's order (ascending along the slice normal: feet first for these) — the truth
    # follows each slice, not the generator's order.
    blood = {str(ds.SOPInstanceUID): pixels for ds, pixels in zip(phantom.slices, phantom.blood_pixels, strict=True)}
    instances = sorted_along_normal(phantom.slices)
    first = instances[0]
    series = SeriesInput(str(first.SeriesInstanceUID), "CT", "HEAD", str(first.SeriesDescription), tuple(instances))
    study = StudyInput(str(first.StudyInstanceUID), "CT", "HEAD", (series,))
    truth = tuple(blood[str(ds.SOPInstanceUID)] for ds in instances)
    return Case(study, {head_ct.LABEL: phantom.haemorrhage}, truth, int(first.Rows))


QC_DEFECTS: Final = (
    None,
    "qc.missing_slices",
    "qc.slice_spacing",
    "qc.body_part",
    "qc.truncated_fov",
    "qc.noise",
    "qc.saturation",
    "qc.orientation",
)
_QC_DESCRIPTIONS: Final = {"HEAD": "头颅CT平扫", "ABDOMEN": "腹部CT平扫", "CHEST": "胸部正位片"}


def set_hounsfield(ds: Any, hu: npt.NDArray[np.float32]) -> None:
    """Write HU values back as the generator stores them (intercept −1024, 12-bit range)."""
    ds.PixelData = (np.clip(np.rint(hu), -1024, 3071) + 1024).astype("<i2").tobytes()


def qc_case(seed: int, size: int) -> Case:
    """A small CT (head or abdomen) or chest film with at most one technical defect, the way
    real studies go wrong: the defect cycles with the seed (none, then each rule's), its
    severity and place are drawn from the seed. Films get only the defects a film can have."""
    rng = np.random.default_rng([seed, 3])
    defect = QC_DEFECTS[seed % len(QC_DEFECTS)]
    film = defect in {None, "qc.body_part", "qc.noise", "qc.saturation", "qc.orientation"} and rng.random() < 0.4
    truth = {label: label == defect for label in QC_DEFECTS if label}
    if film:
        ds = synthetic.radiograph("DX", seed=seed, size=4 * size)
        part, description = "CHEST", _QC_DESCRIPTIONS["CHEST"]
        pixels = ds.pixel_array.astype(np.float32)
        top = float(2 ** int(ds.BitsStored) - 1)
        if defect == "qc.body_part":
            description = str(rng.choice(["头颅正位", "腹部平片", "Skull AP"]))
        elif defect == "qc.noise":
            spread = float(np.percentile(pixels, 99) - np.percentile(pixels, 1))
            pixels += rng.normal(0.0, float(rng.uniform(0.15, 0.4)) * spread, pixels.shape).astype(np.float32)
        elif defect == "qc.saturation":
            rows = int(pixels.shape[0] * rng.uniform(0.4, 0.7))
            pixels[:rows] = top
        elif defect == "qc.orientation":
            ds.PatientOrientation = list(rng.choice([["R", "F"], ["L", "H"]]))
        ds.PixelData = np.clip(pixels, 0, top).astype("<u2").tobytes()
        series = SeriesInput(str(ds.SeriesInstanceUID), "DX", part, description, (ds,))
        return Case(StudyInput(str(ds.StudyInstanceUID), "DX", part, (series,)), truth, grid=4 * size)
    kind: Literal["head", "abdomen"] = "abdomen" if defect == "qc.truncated_fov" or rng.random() < 0.4 else "head"
    slices = synthetic.ct_series(kind, int(rng.integers(12, 21)), seed=seed, rows=size, cols=size)
    part = kind.upper()
    header: str | None = part
    description = _QC_DESCRIPTIONS[part]
    if defect == "qc.missing_slices":
        start = int(rng.integers(2, len(slices) - 4))
        del slices[start : start + int(rng.integers(1, 3))]
    elif defect == "qc.slice_spacing":
        index = int(rng.integers(2, len(slices) - 2))
        position = [float(v) for v in slices[index].ImagePositionPatient]
        step = float(slices[0].SliceThickness)
        position[2] += float(rng.choice([-1, 1])) * step * float(rng.uniform(0.2, 0.4))
        slices[index].ImagePositionPatient = position
    elif defect == "qc.body_part":
        if rng.random() < 0.5:
            header = "CHEST"
        else:
            header, description = None, "Routine 5mm"
    elif defect == "qc.truncated_fov":
        band = int(rng.integers(3, 8))
        for ds in slices:
            hu = qc.hounsfield(ds)
            hu[:, :band] = 40.0
            set_hounsfield(ds, hu)
    elif defect == "qc.noise":
        sigma = float(rng.uniform(150.0, 400.0))
        for ds in slices:
            set_hounsfield(ds, qc.hounsfield(ds) + rng.normal(0.0, sigma, (size, size)).astype(np.float32))
    elif defect == "qc.saturation":
        ds = slices[int(rng.integers(len(slices) // 3, 2 * len(slices) // 3))]
        hu = qc.hounsfield(ds)
        side = int(size * rng.uniform(0.25, 0.4))
        hu[size // 2 - side // 2 : size // 2 + side // 2, size // 2 - side // 2 : size // 2 + side // 2] = 3071.0
        set_hounsfield(ds, hu)
    elif defect == "qc.orientation":
        if rng.random() < 0.5:
            for ds in slices:
                ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
        else:
            a, b = rng.choice(len(slices), 2, replace=False)
            slices[a].InstanceNumber, slices[b].InstanceNumber = slices[b].InstanceNumber, slices[a].InstanceNumber
    instances = sorted_along_normal(slices)
    first = instances[0]
    series = SeriesInput(str(first.SeriesInstanceUID), "CT", header, description, tuple(instances))
    return Case(StudyInput(str(first.StudyInstanceUID), "CT", header, (series,)), truth, grid=size)


def cases(name: str, base: int, count: int, sizes: tuple[int, ...]) -> Iterator[Case]:
    """``count`` cases of model ``name`` from seeds ``base``, ``base + 1``…; the size (chest,
    QC) or slice count (head) cycles through ``sizes``."""
    for n in range(count):
        size = sizes[n % len(sizes)]
        if name == "chest-dx-triage":
            yield chest_case(base + n, size)
        elif name == "image-qc":
            yield qc_case(base + n, size)
        else:
            yield head_case(base + n, size)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _tensors(name: str, entry: RegistryEntry, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """A case as training images and targets, through the model's own input code."""
    if name == "chest-dx-triage":
        size = int(entry.input_spec.get("size", [256, 256])[0])
        x = chest_dx.film_input(case.study.series[0].instances[0], size)
        y = torch.tensor([[float(case.truth[label]) for label in entry.labels]])
        return x, y
    blood = np.asarray(case.slice_truth) * (512 / case.grid) ** 2
    keep = (blood == 0) | (blood >= _BLOOD_PIXELS_512)
    x = _volume(entry, case)[torch.from_numpy(keep)]
    y = torch.from_numpy((blood[keep] > 0).astype(np.float32))[:, None]
    return x, y


def train(
    name: str,
    registry_path: Path,
    *,
    seed: int = TRAIN_SEED,
    cases_override: int | None = None,
    epochs_override: int | None = None,
    threads: int = 2,
    on_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``name`` from scratch, write its weights, pick its operating points on the
    validation set, and record weights file, sha256 and thresholds in the registry. Returns
    what was written."""
    plan = recipe(name)
    registry = Registry.from_file(registry_path)
    entry = registry.get(name)
    if entry.kind == "rules":
        raise TrainingError(f"{name} is rule-based: there is nothing to train; `yunying ai eval {name}` evaluates it")
    torch.set_num_threads(threads)
    _seed_everything(seed)
    count = cases_override or plan.train_cases
    epochs = epochs_override or plan.epochs
    images: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    with _progress() as progress:
        task = progress.add_task(f"generating {count} training cases", total=count)
        for case in cases(name, seed, count, plan.sizes):
            x, y = _tensors(name, entry, case)
            images.append(x)
            targets.append(y)
            progress.advance(task)
    x_all, y_all = torch.cat(images), torch.cat(targets)
    positives = y_all.sum(0)
    pos_weight = ((y_all.shape[0] - positives) / positives.clamp(min=1.0)).clamp(max=10.0)
    on_line(f"{x_all.shape[0]} training images, positives per label {positives.int().tolist()}")
    net = nets.build(len(entry.labels))
    optimiser = torch.optim.AdamW(net.parameters(), lr=plan.learning_rate, weight_decay=1e-4)
    steps = epochs * ((x_all.shape[0] + plan.batch - 1) // plan.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=plan.learning_rate, total_steps=steps)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    with _progress() as progress:
        task = progress.add_task(f"training {name}, {epochs} epochs", total=steps)
        for _epoch in range(epochs):
            order = torch.randperm(x_all.shape[0], generator=generator)
            total = 0.0
            for start in range(0, len(order), plan.batch):
                pick = order[start : start + plan.batch]
                batch = x_all[pick]
                # Left-right flips: a finding is as likely on either side.
                flip = torch.rand(len(pick), generator=generator) < 0.5
                batch[flip] = batch[flip].flip(-1)
                optimiser.zero_grad()
                loss = loss_fn(net(batch), y_all[pick])
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(pick)
                progress.advance(task)
            progress.update(task, description=f"training {name}, loss {total / len(order):.4f}")
    net.eval()
    weights_name = f"{name}-{entry.version}.pt"
    weights_path = registry.root / "weights" / weights_name
    meta = {"trained_on": f"{count} phantom cases, seeds {seed}–{seed + count - 1}", "epochs": epochs}
    nets.save(weights_path, net, tuple(entry.labels), meta)

    # Operating points from the validation set, through the inference code.
    scores, truth = _scores(name, entry, net, VALIDATION_SEED, plan.validation_cases, plan.sizes)
    thresholds = {label: operating_point(scores[:, i], truth[:, i]) for i, label in enumerate(entry.labels)}
    sha = file_sha256(weights_path)
    update_registry(registry_path, name, entry.version, weights=weights_name, sha256=sha, thresholds=thresholds)
    on_line(f"wrote {weights_path} (sha256 {sha}); operating points {thresholds}")
    return {"weights": str(weights_path), "sha256": sha, "thresholds": thresholds}


def _scores(
    name: str, entry: RegistryEntry, net: torch.nn.Module, base: int, count: int, sizes: tuple[int, ...]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Study-level scores of a bare network (before it is registered) and the truth."""
    rows, truths = [], []
    with torch.inference_mode(), _progress() as progress:
        task = progress.add_task(f"validation ({count} cases)", total=count)
        for case in cases(name, base, count, sizes):
            x = _tensors(name, entry, case)[0] if name == "chest-dx-triage" else _volume(entry, case)
            probabilities = nets.probabilities(net, x)  # type: ignore[arg-type]
            rows.append(probabilities.max(axis=0))
            truths.append([case.truth[label] for label in entry.labels])
            progress.advance(task)
    return np.asarray(rows, dtype=np.float32), np.asarray(truths, dtype=bool)


def _volume(entry: RegistryEntry, case: Case) -> torch.Tensor:
    size = int(entry.input_spec.get("size", [128, 128])[0])
    window = entry.input_spec.get("window", [40, 80])
    return head_ct.volume_input(case.study.series[0].instances, size, (float(window[0]), float(window[1]))).tensor


def operating_point(scores: npt.NDArray[np.float32], truth: npt.NDArray[np.bool_]) -> float:
    """The threshold (two decimals) with the best Youden index among those whose sensitivity
    reaches ``TARGET_SENSITIVITY``; the middle one when several tie."""
    if truth.all() or not truth.any():
        raise TrainingError("the validation set needs positives and negatives of every label: generate more cases")
    candidates = np.round(np.arange(0.02, 0.99, 0.01), 2)
    best: list[float] = []
    best_j = -1.0
    for threshold in candidates:
        called = scores >= threshold
        sensitivity = float((called & truth).sum() / truth.sum())
        specificity = float((~called & ~truth).sum() / (~truth).sum())
        if sensitivity < TARGET_SENSITIVITY:
            continue
        j = sensitivity + specificity - 1.0
        if j > best_j + 1e-9:
            best, best_j = [float(threshold)], j
        elif abs(j - best_j) <= 1e-9:
            best.append(float(threshold))
    if not best:  # no threshold reaches the target: the lowest candidate calls the most
        return float(candidates[0])
    return best[len(best) // 2]


def update_registry(path: Path, name: str, version: str, **fields: Any) -> None:
    """Set ``fields`` on the registry entry ``name`` ``version`` in the file at ``path``."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    for item in raw["models"]:
        if item["name"] == name and item["version"] == version:
            item.update(fields)
            break
    else:
        raise TrainingError(f"{path} has no entry {name} {version}")
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


@dataclass
class LabelFigures:
    label: str
    threshold: float
    auc: float
    sensitivity: float
    specificity: float
    positives: int
    negatives: int


@dataclass
class Evaluation:
    model: str
    version: str
    cases: int
    seeds: tuple[int, int]
    size: int
    labels: list[LabelFigures] = field(default_factory=list)
    seconds_per_case: float = 0.0


def evaluate(
    name: str,
    registry_path: Path,
    *,
    seed: int = EVAL_SEED,
    count: int | None = None,
    size: int | None = None,
    threads: int = 2,
) -> Evaluation:
    """Run the registered model (weights checked) on ``count`` held-out cases exactly as the
    worker runs it and compute its figures at the registered operating points."""
    import time

    plan = recipe(name)
    registry = Registry.from_file(registry_path)
    entry = registry.get(name)
    model = registry.load(entry)
    torch.set_num_threads(threads)
    count = count or plan.eval_cases
    size = size or plan.eval_size
    scores: list[list[float]] = []
    truths: list[list[bool]] = []
    started = time.perf_counter()
    with torch.inference_mode(), _progress() as progress:
        task = progress.add_task(f"evaluating {name} on {count} held-out cases", total=count)
        for case in cases(name, seed, count, (size,)):
            prepared = model.prepare(case.study)
            findings = {f.label: f for f in model.findings(case.study, model.predict(prepared))}
            # A rule has no probability: its call is the score (AUC is then not stated).
            # A label the model did not state (a CT-only rule on a film) is left out of its figures.
            scores.append([_score(findings.get(label)) for label in entry.labels])
            truths.append([case.truth[label] for label in entry.labels])
            progress.advance(task)
    elapsed = time.perf_counter() - started
    s, t = np.asarray(scores, dtype=np.float32), np.asarray(truths, dtype=bool)
    result = Evaluation(name, entry.version, count, (seed, seed + count - 1), size, seconds_per_case=elapsed / count)
    for i, label in enumerate(entry.labels):
        threshold = entry.threshold(label)
        stated = ~np.isnan(s[:, i])
        score, truth = s[stated, i], t[stated, i]
        called = score >= threshold
        pos, neg = int(truth.sum()), int((~truth).sum())
        auc = _auc(score, truth) if pos and neg and entry.kind != "rules" else float("nan")
        result.labels.append(
            LabelFigures(
                label=label,
                threshold=threshold,
                auc=auc,
                sensitivity=float((called & truth).sum() / pos) if pos else float("nan"),
                specificity=float((~called & ~truth).sum() / neg) if neg else float("nan"),
                positives=pos,
                negatives=neg,
            )
        )
    return result


def _score(finding: Any) -> float:
    """A finding's score: its probability, or for a rule its call (1 or 0); NaN when absent."""
    if finding is None:
        return float("nan")
    return float(finding.probability) if finding.probability is not None else float(finding.positive)


def _auc(scores: npt.NDArray[np.float32], truth: npt.NDArray[np.bool_]) -> float:
    value: Any = compute_roc_auc(torch.from_numpy(scores), torch.from_numpy(truth.astype(np.float32)))
    return float(value)


def card_block(evaluation: Evaluation) -> str:
    """The card's evaluation section, as ``yunying ai eval --write-card`` writes it."""
    unit = "films" if evaluation.model == "chest-dx-triage" else "studies"
    size = {
        "chest-dx-triage": f"{evaluation.size}² films",
        "head-ct-ich": f"{evaluation.size} slices of 512² each",
        "image-qc": f"CT of 12–20 slices at {evaluation.size}², or a {4 * evaluation.size}² chest film; "
        "one defect or none each",
    }.get(evaluation.model, str(evaluation.size))
    lines = [
        CARD_BEGIN,
        f"Held-out evaluation, written by `yunying ai eval {evaluation.model} --write-card`: "
        f"{evaluation.cases} generated {unit} ({size}), seeds {evaluation.seeds[0]}–{evaluation.seeds[1]} "
        + (
            "(rules: their limits are fixed in ai_models/qc.py; a rule's call is its score, so no AUC). "
            if evaluation.model == "image-qc"
            else f"(training used {TRAIN_SEED}…, operating points were picked on {VALIDATION_SEED}…). "
        )
        + f"Version {evaluation.version}; {evaluation.seconds_per_case:.2f} s per case on 2 CPU threads.",
        "",
        "| label | AUC | sensitivity | specificity | operating point | positives | negatives |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in evaluation.labels:
        lines.append(
            f"| {f.label} | {_figure(f.auc)} | {_figure(f.sensitivity)} | {_figure(f.specificity)} | {f.threshold:.2f} "
            f"| {f.positives} | {f.negatives} |"
        )
    lines.append(CARD_END)
    return "\n".join(lines)


def _figure(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def write_card(card: Path, evaluation: Evaluation) -> None:
    """Replace the evaluation section of ``card`` (between the eval markers) with these figures."""
    text = card.read_text(encoding="utf-8")
    if CARD_BEGIN not in text or CARD_END not in text:
        raise TrainingError(f"card {card} has no evaluation section: add the lines {CARD_BEGIN} and {CARD_END}")
    head, _, rest = text.partition(CARD_BEGIN)
    _, _, tail = rest.partition(CARD_END)
    card.write_text(head + card_block(evaluation) + tail, encoding="utf-8")


def card_figures(card: Path) -> dict[str, dict[str, float]]:
    """The figures a card's evaluation section states, per label (for the test that re-runs
    the evaluation and compares)."""
    text = card.read_text(encoding="utf-8")
    section = text.partition(CARD_BEGIN)[2].partition(CARD_END)[0]
    figures: dict[str, dict[str, float]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in {"label", "---"}:
            try:
                figures[cells[0]] = {
                    "auc": float("nan") if cells[1] == "n/a" else float(cells[1]),
                    "sensitivity": float(cells[2]),
                    "specificity": float(cells[3]),
                    "threshold": float(cells[4]),
                }
            except ValueError:
                continue
    return figures
