"""Report templates: the structured fields a reader fills in, defined as data.

Each template is one JSON Schema (draft 2020-12) file in ``templates/``: the fields, their
Chinese labels (``title``), types, enums (English codes, Chinese ``x-enum-titles``), ranges and
units (``x-unit``). Extra keys say where the template applies: ``x-modalities`` and
``x-body-parts`` (PS3.3 C.7.3.1, Body Part Examined terms; empty = any). Adding a template is
adding a file; no code changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reading.reports.document import FieldValue

GENERIC_TEMPLATE: Final = "generic"
BOOLEAN_TEXT: Final = {True: "有", False: "无"}
RANGE_WORDS: Final = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))


class TemplateError(ValueError):
    """A template id or a set of field values the templates do not allow; the message names the fix."""


@dataclass(frozen=True)
class Template:
    id: str
    title: str  # Chinese, printed on the report, e.g. "头颅CT平扫"
    title_en: str
    modalities: tuple[str, ...]  # empty: any modality
    body_parts: tuple[str, ...]  # empty: any body part
    schema: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        props: Mapping[str, Mapping[str, Any]] = self.schema.get("properties", {})
        return props


@cache
def load_templates() -> dict[str, Template]:
    """Every template in ``templates/``, by id (the file name without ``.json``).

    Raises ``TemplateError`` when a file is not a valid draft 2020-12 schema or lacks its
    Chinese title, so a broken template fails at start-up, not when a reader signs.
    """
    found: dict[str, Template] = {}
    folder = resources.files("reading.reports").joinpath("templates")
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".json"):
            continue
        template_id = entry.name.removesuffix(".json")
        schema = json.loads(entry.read_text(encoding="utf-8"))
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:  # jsonschema.SchemaError; any failure here is a broken file
            raise TemplateError(f"template {entry.name} is not a valid JSON Schema: {exc}") from exc
        if not isinstance(schema.get("title"), str) or "x-title-en" not in schema:
            raise TemplateError(f"template {entry.name} needs a Chinese 'title' and an 'x-title-en'")
        found[template_id] = Template(
            id=template_id,
            title=schema["title"],
            title_en=schema["x-title-en"],
            modalities=tuple(m.upper() for m in schema.get("x-modalities", ())),
            body_parts=tuple(b.upper() for b in schema.get("x-body-parts", ())),
            schema=schema,
        )
    if GENERIC_TEMPLATE not in found:
        raise TemplateError(f"no {GENERIC_TEMPLATE}.json template: every study needs a fallback")
    return found


def choose_template(modality: str | None, body_part: str | None) -> Template:
    """The most specific template for a study's modality and Body Part Examined, else generic.

    A template named for the body part beats one named only for the modality; one that names
    neither (generic) always matches. Never raises for an unknown modality or body part.
    """
    modality_key = (modality or "").strip().upper()
    body_part_key = (body_part or "").strip().upper()
    best: tuple[int, str] | None = None
    for template in load_templates().values():
        if template.modalities and modality_key not in template.modalities:
            continue
        if template.body_parts and body_part_key not in template.body_parts:
            continue
        score = (2 if template.body_parts else 0) + (1 if template.modalities else 0)
        if best is None or score > best[0]:
            best = (score, template.id)
    return load_templates()[best[1] if best else GENERIC_TEMPLATE]


def get_template(template_id: str) -> Template:
    """The template with this id; ``TemplateError`` naming the known ids when there is none."""
    templates = load_templates()
    if template_id not in templates:
        raise TemplateError(f"unknown template id {template_id!r}; known: {', '.join(sorted(templates))}")
    return templates[template_id]


def validate_fields(template_id: str, values: Mapping[str, Any]) -> None:
    """Check a reader's field values against the template's schema, all problems at once.

    A value of None is a field left empty and is not checked. Raises ``TemplateError`` whose
    message lists every offending field and what it must be (unknown field with the allowed
    ones, wrong type, value outside the enum or range).
    """
    template = get_template(template_id)
    filled = {key: value for key, value in values.items() if value is not None}
    validator = Draft202012Validator(dict(template.schema))
    errors = sorted(validator.iter_errors(filled), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = [_describe(template, filled, error) for error in errors]
        raise TemplateError("; ".join(problems))


def field_values(template_id: str, values: Mapping[str, Any]) -> tuple[FieldValue, ...]:
    """The present values as printable Chinese text, in the template's field order.

    Booleans print as 有/无, enum codes as their Chinese title, numbers with their unit; empty
    (None) fields are left out.
    Raises ``TemplateError`` (see ``validate_fields``) before rendering anything invalid.
    """
    validate_fields(template_id, values)
    template = get_template(template_id)
    rendered: list[FieldValue] = []
    for key, spec in template.properties.items():
        value = values.get(key)
        if value is None:
            continue
        rendered.append(FieldValue(key=key, label=str(spec.get("title", key)), value=_render(spec, value)))
    return tuple(rendered)


def _render(spec: Mapping[str, Any], value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN_TEXT[value]
    if "enum" in spec and "x-enum-titles" in spec:
        return str(spec["x-enum-titles"][list(spec["enum"]).index(value)])
    if isinstance(value, int | float):
        # Chinese reports write the unit straight after the figure: 3mm, 2枚, 45%.
        return f"{value:g}{spec.get('x-unit', '')}"
    return str(value)


def _describe(template: Template, values: Mapping[str, Any], error: ValidationError) -> str:
    path = list(error.absolute_path)
    key = str(path[0]) if path else None
    spec = template.properties.get(key, {}) if key else {}
    label = f"field {key!r} ({spec.get('title', '')}) of template {template.id}" if key else f"template {template.id}"
    match error.validator:
        case "additionalProperties":
            unknown = sorted(k for k in values if k not in template.properties)
            names = ", ".join(repr(k) for k in unknown)
            return f"unknown field {names} for template {template.id}; allowed: {', '.join(template.properties)}"
        case "type":
            got = f"{type(error.instance).__name__} {error.instance!r}"
            return f"{label} must be of type {error.validator_value}, got {got}"
        case "enum":
            titles = spec.get("x-enum-titles") or [""] * len(error.validator_value)
            allowed = ", ".join(f"{code} ({title})" for code, title in zip(error.validator_value, titles, strict=False))
            return f"{label} must be one of {allowed}; got {error.instance!r}"
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum":
            unit = spec.get("x-unit", "")
            bounds = [f"{word} {spec[key]}{unit}" for key, word in RANGE_WORDS if key in spec]
            return f"{label} must be {' and '.join(bounds)}; got {error.instance!r}"
        case "maxLength":
            return f"{label} must be at most {error.validator_value} characters; got {len(error.instance)}"
        case _:
            return f"{label}: {error.message}"
