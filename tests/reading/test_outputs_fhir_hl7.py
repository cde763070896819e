"""FHIR R4B DiagnosticReport and HL7 v2.5 ORU^R01: both validate, keep the Chinese text through
a round trip, carry the status and the critical flag, and refuse what a receiver cannot file."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from reading.reports.document import ReportDocument, ReportPatient, ReportStatus
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.fhir import build_diagnostic_report, check_value_sets
from reading.reports.outputs.hl7 import build_oru_r01
from tests.reading.conftest import FINDINGS, IMPRESSION, STUDY_UID, ReportFactory, amended

FACILITIES = {"sending_facility": "DONGXIAN_RIC", "receiving_facility": "DONGXIANG_THC"}

# ------------------------------------------------------------------ FHIR


def test_diagnostic_report_validates_and_keeps_chinese_through_json(report: ReportDocument) -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3 stand-in\n%%EOF\n"
    resource = build_diagnostic_report(report, pdf)
    text = json.dumps(resource, ensure_ascii=False)
    back = DiagnosticReport.model_validate_json(text)

    assert back.status == "final"
    assert back.conclusion == IMPRESSION
    assert back.category[0].coding[0].code == "RAD"
    assert back.code.coding[0].system == "http://loinc.org"
    assert back.code.coding[0].code == "18748-4"
    assert back.subject.reference == "#patient"
    patient = back.contained[0]
    assert patient.name[0].family == "王"
    assert patient.name[0].given == ["小明"]
    assert patient.identifier[0].value == "DX20240506001"
    assert patient.gender == "male"
    assert back.imagingStudy[0].identifier.value == f"urn:oid:{STUDY_UID}"
    assert back.basedOn[0].identifier.value == "A20240506017"
    assert back.resultsInterpreter[0].display == "李医生"
    assert resource["issued"] == "2024-05-06T10:41:30+08:00"
    assert resource["effectiveDateTime"] == "2024-05-06T09:55:12+08:00"
    assert back.conclusionCode[0].coding[0].code == "AA"
    form = back.presentedForm[0]
    assert (form.contentType, form.language) == ("application/pdf", "zh-CN")
    assert base64.b64decode(resource["presentedForm"][0]["data"]) == pdf


@pytest.mark.parametrize(
    ("status", "expected"),
    [(ReportStatus.PRELIMINARY, "preliminary"), (ReportStatus.FINAL, "final"), (ReportStatus.AMENDED, "amended")],
)
def test_status_maps_onto_the_fhir_value_set(make_report: ReportFactory, status: ReportStatus, expected: str) -> None:
    assert build_diagnostic_report(make_report(status=status))["status"] == expected


def test_without_pdf_or_critical_those_parts_are_absent(make_report: ReportFactory) -> None:
    resource = build_diagnostic_report(make_report(critical=False))
    assert "presentedForm" not in resource
    assert "conclusionCode" not in resource


def test_the_models_accept_a_bogus_status_but_check_value_sets_does_not(report: ReportDocument) -> None:
    bogus = copy.deepcopy(build_diagnostic_report(report))
    bogus["status"] = "bogus"
    DiagnosticReport.model_validate(bogus)  # FIELD-NOTES: no binding enforcement in the models

    with pytest.raises(ReportOutputError, match=r"status 'bogus' is not in DiagnosticReport status \(amended"):
        check_value_sets(bogus)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("category", 0, "coding", 0, "code"), "XRAY", "category\\[0\\].*v2-0074"),
        (("category", 0, "coding", 0, "system"), "http://example.org/sections", "category\\[0\\]"),
        (("code", "coding", 0, "code"), "11111-1", "no LOINC coding"),
        (("conclusionCode", 0, "coding", 0, "code"), "CRIT", "conclusionCode\\[0\\] 'CRIT'"),
        (("presentedForm", 0, "contentType"), "application/msword", "contentType"),
        (("contained", 0, "gender"), "男", "gender '男'"),
        (("language",), "Chinese", "language 'Chinese'"),
    ],
)
def test_check_value_sets_names_each_bad_code(
    report: ReportDocument, path: tuple[str | int, ...], value: str, message: str
) -> None:
    resource = copy.deepcopy(build_diagnostic_report(report, b"%PDF-1.7 x"))
    target = resource
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value

    with pytest.raises(ReportOutputError, match=message):
        check_value_sets(resource)


# ------------------------------------------------------------------ HL7 v2


def test_oru_r01_parses_back_with_chinese_text(report: ReportDocument) -> None:
    er7 = build_oru_r01(report, **FACILITIES)
    message = parse_message(er7, find_groups=True, validation_level=VALIDATION_LEVEL.STRICT)
    message.validate()

    assert message.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert message.msh.msh_12.to_er7() == "2.5"
    assert message.msh.msh_18.to_er7() == "UNICODE UTF-8"
    result = message.oru_r01_patient_result
    pid = result.oru_r01_patient.pid
    assert pid.pid_3.to_er7() == "DX20240506001^^^DONGXIANG_THC^PI"
    assert pid.pid_5.to_er7() == "王^小明"
    order = result.oru_r01_order_observation
    assert order.obr.obr_3.to_er7() == "A20240506017"
    assert order.obr.obr_25.to_er7() == "F"
    by_code = {obx.obx.obx_3.obx_3_1.to_er7(): obx.obx for obx in order.oru_r01_observation}
    assert by_code["113014"].obx_5.to_er7() == STUDY_UID
    assert by_code["19005-8"].obx_5.to_er7() == IMPRESSION
    assert by_code["19005-8"].obx_8.to_er7() == "AA"
    assert by_code["18782-3"].obx_5.to_er7() == FINDINGS
    assert by_code["midline_shift_mm"].obx_5.to_er7() == "3mm"
    assert {obx.obx.obx_11.to_er7() for obx in order.oru_r01_observation} == {"F"}
    assert "NTE|1||危急值通报：2024-05-06 10:45 经电话通知东乡镇卫生院 陈护士（记录人：李医生）" in er7.split("\r")


@pytest.mark.parametrize(
    ("status", "code"), [(ReportStatus.PRELIMINARY, "P"), (ReportStatus.FINAL, "F"), (ReportStatus.AMENDED, "C")]
)
def test_result_status_follows_the_report(make_report: ReportFactory, status: ReportStatus, code: str) -> None:
    er7 = build_oru_r01(make_report(status=status), **FACILITIES)
    obr = next(segment for segment in er7.split("\r") if segment.startswith("OBR|"))
    assert obr.split("|")[25] == code


def test_not_critical_has_no_alarm_flag(make_report: ReportFactory) -> None:
    er7 = build_oru_r01(make_report(critical=False), **FACILITIES)
    assert "|AA|" not in er7
    assert "NTE|" not in er7


def test_delimiters_and_line_breaks_are_escaped_on_the_wire(make_report: ReportFactory) -> None:
    tricky = "密度 ^ 增高 | 见 & 区 ~ 2 \\ 3\n第二行"
    er7 = build_oru_r01(make_report(impression=tricky), **FACILITIES)

    segment = next(s for s in er7.split("\r") if "|19005-8^" in s)
    # v2.5 2.7: delimiters as \F\ \S\ \T\ \R\ \E\; an FT line break is the command \.br\.
    assert segment.split("|")[5] == r"密度 \S\ 增高 \F\ 见 \T\ 区 \R\ 2 \E\ 3\.br\第二行"
    assert len(er7.split("\r")) == len(build_oru_r01(make_report(), **FACILITIES).split("\r"))
    parse_message(er7, find_groups=True, validation_level=VALIDATION_LEVEL.STRICT).validate()


def test_amended_report_carries_the_addendum(report: ReportDocument) -> None:
    er7 = build_oru_r01(amended(report), **FACILITIES)
    assert "复核：出血量估算约13ml，余同前。" in er7
    assert "|Y4711V2|" in er7


def test_missing_patient_id_is_refused_with_the_fix(make_report: ReportFactory) -> None:
    nameless = make_report(patient=ReportPatient(patient_id="  ", name="王^小明"))
    with pytest.raises(ReportOutputError, match="PID-3 is required"):
        build_oru_r01(nameless, **FACILITIES)
