"""Report templates: every file is a valid schema with Chinese labels, the right one is chosen
for a study, bad values are refused with a message that names the field and the fix, and
good values print as Chinese text in template order."""

from __future__ import annotations

import pytest

from reading.reports.document import FieldValue
from reading.reports.templates import (
    TemplateError,
    choose_template,
    field_values,
    load_templates,
    validate_fields,
)


def test_every_template_is_complete_and_labelled_in_chinese() -> None:
    templates = load_templates()

    assert set(templates) == {"ct_head", "ct_chest", "ct_abdomen", "chest_xray", "generic"}
    for template in templates.values():
        assert template.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert template.schema["additionalProperties"] is False
        assert any("\u4e00" <= ch <= "\u9fff" for ch in template.title), template.id
        for key, spec in template.properties.items():
            assert any("\u4e00" <= ch <= "\u9fff" for ch in spec["title"]), f"{template.id}.{key}"
            if "x-enum-titles" in spec:
                assert len(spec["x-enum-titles"]) == len(spec["enum"]), f"{template.id}.{key}"
    assert len(templates["ct_head"].properties) >= 15


@pytest.mark.parametrize(
    ("modality", "body_part", "expected"),
    [
        ("CT", "HEAD", "ct_head"),
        ("ct", " brain ", "ct_head"),
        ("CT", "CHEST", "ct_chest"),
        ("CT", "ABDOMEN", "ct_abdomen"),
        ("DX", "CHEST", "chest_xray"),
        ("CR", "CHEST", "chest_xray"),
        ("DX", "HEAD", "generic"),  # a skull film: no DX head template
        ("CT", None, "generic"),
        ("MR", "HEAD", "generic"),
        (None, None, "generic"),
    ],
)
def test_choose_template_takes_the_most_specific(modality: str | None, body_part: str | None, expected: str) -> None:
    assert choose_template(modality, body_part).id == expected


def test_valid_values_pass() -> None:
    validate_fields("ct_chest", {"nodule_count": 2, "largest_nodule_mm": 8.5, "largest_nodule_lobe": "RUL"})
    validate_fields("generic", {})


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown template id 'ct_knee'; known: chest_xray, ct_abdomen"):
        validate_fields("ct_knee", {})


def test_unknown_field_names_the_allowed_ones() -> None:
    with pytest.raises(TemplateError) as caught:
        validate_fields("ct_head", {"foo": 1, "haemorrhage": True})

    message = str(caught.value)
    assert message.startswith("unknown field 'foo' for template ct_head; allowed: haemorrhage, haemorrhage_type")
    assert "midline_shift_mm" in message


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(TemplateError) as caught:
        validate_fields(
            "ct_head",
            {"midline_shift_mm": "3", "ventricles": "big", "aspects": 11, "haemorrhage": "yes"},
        )

    message = str(caught.value)
    assert "field 'midline_shift_mm' (中线移位) of template ct_head must be of type number, got str '3'" in message
    assert "field 'ventricles' (脑室系统) of template ct_head must be one of normal (未见异常)" in message
    assert "got 'big'" in message
    assert "field 'aspects' (ASPECTS评分) of template ct_head must be ≥ 0分 and ≤ 10分; got 11" in message
    assert "field 'haemorrhage' (颅内出血) of template ct_head must be of type boolean" in message


def test_a_boolean_is_not_a_number() -> None:
    # Python's True is an int; a schema number must still refuse it.
    with pytest.raises(TemplateError, match="midline_shift_mm"):
        validate_fields("ct_head", {"midline_shift_mm": True})


def test_field_values_print_chinese_in_template_order() -> None:
    rendered = field_values(
        "ct_head",
        {
            "ventricles": "compressed",
            "midline_shift_mm": 3,
            "haemorrhage": True,
            "skull_fracture": False,
            "haemorrhage_volume_ml": 12.5,
            "haemorrhage_location": "左侧基底节区",
            "infarct": None,  # not filled in: left out
        },
    )

    assert rendered == (
        FieldValue("haemorrhage", "颅内出血", "有"),
        FieldValue("haemorrhage_location", "出血部位", "左侧基底节区"),
        FieldValue("haemorrhage_volume_ml", "出血量估算（多田公式）", "12.5ml"),
        FieldValue("midline_shift_mm", "中线移位", "3mm"),
        FieldValue("ventricles", "脑室系统", "受压变窄"),
        FieldValue("skull_fracture", "颅骨骨折", "无"),
    )


def test_field_values_refuses_before_rendering() -> None:
    with pytest.raises(TemplateError, match="unknown field 'nodules'"):
        field_values("chest_xray", {"nodules": 3})
