"""The registry of pre-screening models: what each is, what it reads, where its weights are and
how to check them, its operating points and its card (MONAI Deploy's model card in spirit).

Entries are data (``ai_models/registry.json``, or a site's own file); three kinds load through
one ``load``:

- ``rules``: plain Python (the image QC), no weights: ``factory`` builds it.
- ``torch``: a model class of this project (``factory``, e.g. ``ai_models.models.chest_dx:ChestTriage``)
  with its weights file, checked against the registered sha256 before it is read.
- ``torchscript``: a site's own TorchScript model, run by the generic adapter
  (``ai_models/torchscript.py``; its input spec is in docs/ai.md).

A factory is ``factory(entry, weights_path_or_None) -> Model`` (``ai_models/contract.py``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ai_models.anatomy import body_parts_named, canonical_body_part
from ai_models.contract import Model, StudyInput, Triage

PACKAGE = Path(__file__).resolve().parent
DEFAULT_REGISTRY = PACKAGE / "registry.json"


class RegistryError(Exception):
    """The registry file or an entry is unusable; the message says which and how to fix it."""


class WeightsError(RegistryError):
    """An entry's weights are missing or are not the registered file (sha256 differs)."""


class RegistryEntry(BaseModel):
    """One model as the registry knows it. Unknown keys are refused, so a typo is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    kind: Literal["rules", "torch", "torchscript"]
    modalities: tuple[str, ...]
    # Canonical Body Part Examined terms (ai_models/anatomy.py); empty: every body part.
    body_parts: tuple[str, ...] = ()
    description: str = ""
    # What the model reads (e.g. {"size": [128, 128], "window": [40, 80], "slices": "all"});
    # for TorchScript the adapter's contract, see docs/ai.md.
    input_spec: dict[str, Any] = Field(default_factory=dict)
    labels: tuple[str, ...] = ()
    weights: str | None = None  # a file name under the registry's weights/ folder
    sha256: str | None = None
    # Operating points: a probability at or above the label's threshold is a positive.
    thresholds: dict[str, float] = Field(default_factory=dict)
    # The priority a positive of each label suggests (only a validated model's may apply).
    triage: dict[str, Triage] = Field(default_factory=dict)
    card: str  # path of the model card, relative to the registry file
    clinically_validated: bool = False
    factory: str | None = None  # "module:Class" for rules and torch models
    # A per-model time limit (seconds) overriding YUNYING_AI_MODEL_TIMEOUT_S.
    timeout_s: float | None = None

    def threshold(self, label: str) -> float:
        """The operating point of ``label`` (0.5 when the entry names none)."""
        return self.thresholds.get(label, 0.5)

    def applies_to(self, study: StudyInput) -> bool:
        """Whether the study is one this model reads: its modality, and — when the entry names
        body parts — a body part from the header or, when that is empty, from a description."""
        if study.modality.upper() not in {m.upper() for m in self.modalities}:
            return False
        if not self.body_parts:
            return True
        return bool(study_body_parts(study) & set(self.body_parts))


def study_body_parts(study: StudyInput) -> set[str]:
    """Body parts a study shows: Body Part Examined of the study and its series, and failing
    those the parts its series descriptions name (many grassroots modalities leave the header
    empty but the technologist types 头颅平扫)."""
    header = {canonical_body_part(study.body_part)} | {canonical_body_part(s.body_part) for s in study.series}
    parts = {part for part in header if part}
    if parts:
        return parts
    named: set[str] = set()
    for series in study.series:
        named |= body_parts_named(series.description)
    return named


class Registry:
    """The entries of one registry file, and where their weights and cards lie."""

    def __init__(self, entries: Iterable[RegistryEntry], root: Path) -> None:
        self.entries = tuple(entries)
        self.root = root
        names = [(e.name, e.version) for e in self.entries]
        if len(set(names)) != len(names):
            raise RegistryError(f"registry at {root} lists a model version twice: {sorted(names)}")

    @classmethod
    def from_file(cls, path: Path | None = None) -> Registry:
        """Read a registry file (default: the shipped ``ai_models/registry.json``). Raises
        ``RegistryError`` naming the file and the entry when it is not valid."""
        path = path or DEFAULT_REGISTRY
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RegistryError(f"no model registry at {path}: set YUNYING_AI_REGISTRY to a registry file") from None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"model registry {path} is not valid JSON: {exc}") from None
        entries = []
        for number, item in enumerate(raw.get("models", []), start=1):
            try:
                entries.append(RegistryEntry.model_validate(item))
            except ValidationError as exc:
                name = item.get("name", f"#{number}") if isinstance(item, dict) else f"#{number}"
                raise RegistryError(
                    f"model {name} in {path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
                ) from None
        return cls(entries, path.parent)

    def get(self, name: str) -> RegistryEntry:
        """The newest registered version of ``name`` (versions compare as dotted numbers)."""
        found = [e for e in self.entries if e.name == name]
        if not found:
            raise RegistryError(f"no model {name!r} in the registry; known: {', '.join(self.names())}")
        return max(found, key=lambda e: _version_key(e.version))

    def names(self) -> list[str]:
        return sorted({e.name for e in self.entries})

    def applicable(self, study: StudyInput) -> list[RegistryEntry]:
        """The models that read this study, newest version of each, QC (rules) first."""
        newest = {name: self.get(name) for name in self.names()}
        chosen = [entry for entry in newest.values() if entry.applies_to(study)]
        return sorted(chosen, key=lambda e: (e.kind != "rules", e.name))

    def weights_path(self, entry: RegistryEntry) -> Path | None:
        return None if entry.weights is None else self.root / "weights" / entry.weights

    def card_path(self, entry: RegistryEntry) -> Path:
        return self.root / entry.card

    def verify(self, entry: RegistryEntry) -> Path | None:
        """The entry's weights file once its sha256 is the registered one. Raises
        ``WeightsError`` saying which file and what to do when it is missing or altered."""
        path = self.weights_path(entry)
        if entry.kind == "rules":
            return path
        if path is None or entry.sha256 is None:
            raise WeightsError(f"model {entry.name} {entry.version} ({entry.kind}) names no weights file and sha256")
        if not path.is_file():
            raise WeightsError(
                f"weights of model {entry.name} {entry.version} are missing: {path} does not exist. "
                f"Build them with `yunying ai train {entry.name}` (or restore the file the registry was written "
                f"for), or remove the entry from {self.root / 'registry.json'}."
            )
        actual = file_sha256(path)
        if actual != entry.sha256.lower():
            raise WeightsError(
                f"weights of model {entry.name} {entry.version} were altered: {path} has sha256 {actual}, the "
                f"registry expects {entry.sha256}. Restore the registered file, or — if it was retrained on "
                f"purpose — register it as a new version with its sha256 (`yunying ai train {entry.name}` does)."
            )
        return path

    def load(self, entry: RegistryEntry) -> Model:
        """A ready model for ``entry``: weights checked first, never read unchecked. Raises
        ``WeightsError`` for missing or altered weights, ``RegistryError`` for a factory that
        cannot be imported."""
        weights = self.verify(entry)
        if entry.kind == "torchscript":
            from ai_models.torchscript import TorchScriptModel

            assert weights is not None
            return TorchScriptModel(entry, weights)
        if entry.factory is None:
            raise RegistryError(f"model {entry.name} {entry.version} ({entry.kind}) names no factory")
        return import_factory(entry.factory)(entry, weights)


def import_factory(spec: str) -> Callable[[RegistryEntry, Path | None], Model]:
    """``"package.module:Name"`` → the object. Raises ``RegistryError`` when it is not there."""
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"model factory {spec!r} cannot be imported: {exc}") from None
    if not callable(factory):
        raise RegistryError(f"model factory {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    # Numbers compare as numbers (1.10 > 1.9), and never against words (TypeError).
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in version.split("."))
