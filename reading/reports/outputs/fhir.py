"""The report as a FHIR R4B DiagnosticReport, for sites whose HIS speaks FHIR.

Built as a plain dict, validated by constructing ``fhir.resources.R4B`` models, then checked
against the value sets the models do not enforce: fhir.resources validates structure only and
accepted ``status="bogus"`` (FIELD-NOTES, "Reports and outputs"). R4B, not R5: the sites' HIS
vendors implement R4, and R4B's DiagnosticReport is R4's.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Final

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from reading.reports.document import ReportDocument, ReportStatus
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.facts import local_time, parse_dicom_date, printed_name, study_datetime

V2_0074: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOINC: Final = "http://loinc.org"
DICOM_UID: Final = "urn:dicom:uid"
REPORT_ID_SYSTEM: Final = "urn:yunying:report"
USER_SYSTEM: Final = "urn:yunying:user"
LANGUAGE: Final = "zh-CN"

# http://hl7.org/fhir/R4B/valueset-diagnostic-report-status.html (required binding)
REPORT_STATUSES: Final = frozenset(
    {"registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled"}
    | {"entered-in-error", "unknown"}
)
# v2 table 0074 (Diagnostic Service Section ID), the DiagnosticReport.category example value set.
SERVICE_SECTIONS: Final = frozenset(
    "AU BG BLB CG CUS CTH CT CH CP EC EN GE HM ICU IMM LAB MB MCB MYC NMS NMR NRS OUS OT OTH OSL PHR PHY PT RAD "
    "RX RUS RC RT SR SP TX VUS VR XRC".split()
)
# LOINC document codes this centre sends (DiagnosticReport.code, LOINC Diagnostic Report Codes).
REPORT_CODES: Final = frozenset({"18748-4"})
INTERPRETATIONS: Final = frozenset({"N", "A", "AA", "H", "HH", "L", "LL"})
GENDERS: Final = frozenset({"male", "female", "other", "unknown"})
PRESENTED_FORM_TYPES: Final = frozenset({"application/pdf", "text/plain", "text/html"})
STATUS_CODES: Final = {
    ReportStatus.PRELIMINARY: "preliminary",
    ReportStatus.FINAL: "final",
    ReportStatus.AMENDED: "amended",
}
GENDER_CODES: Final = {"M": "male", "F": "female", "O": "other"}
BCP47: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def build_diagnostic_report(doc: ReportDocument, pdf: bytes | None = None) -> dict[str, Any]:
    """The report as a DiagnosticReport resource (JSON-ready dict), with the PDF as presentedForm.

    The patient travels as a contained resource: the sites' HIS has no shared patient index
    with the centre, so a bare reference would point nowhere. Raises ``ReportOutputError``
    when the resource fails the R4B model or a value set.
    """
    when = local_time(doc, doc.signed_at or doc.created_at)
    reader = doc.signer or doc.author
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"yunying-report-{doc.report_id}",
        "meta": {"versionId": str(doc.version)},
        "language": LANGUAGE,
        "contained": [_patient(doc)],
        "identifier": [{"system": REPORT_ID_SYSTEM, "value": str(doc.report_id)}],
        "status": STATUS_CODES[doc.status],
        "category": [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}],
            "text": doc.template_title,
        },
        "subject": {"reference": "#patient", "display": printed_name(doc.patient.name)},
        "issued": when.isoformat(timespec="seconds"),
        "performer": [{"display": doc.centre_name}],
        "resultsInterpreter": [
            {"identifier": {"system": USER_SYSTEM, "value": reader.username}, "display": reader.display_name}
        ],
        "imagingStudy": [
            {
                "type": "ImagingStudy",
                "identifier": {"system": DICOM_UID, "value": f"urn:oid:{doc.study.study_uid}"},
                "display": doc.study.study_description or doc.template_title,
            }
        ],
        "conclusion": doc.impression,
    }
    effective = study_datetime(doc)
    if effective:
        resource["effectiveDateTime"] = effective.isoformat(timespec="seconds")
    if doc.study.accession_number:
        accession = {"coding": [{"system": V2_0203, "code": "ACSN", "display": "Accession ID"}]}
        resource["basedOn"] = [
            {"type": "ServiceRequest", "identifier": {"type": accession, "value": doc.study.accession_number}}
        ]
    if doc.critical:
        resource["conclusionCode"] = [
            {"coding": [{"system": V3_INTERPRETATION, "code": "AA", "display": "Critical abnormal"}], "text": "危急值"}
        ]
    if pdf is not None:
        resource["presentedForm"] = [
            {
                "contentType": "application/pdf",
                "language": LANGUAGE,
                "data": base64.b64encode(pdf).decode("ascii"),
                "title": f"{doc.centre_name}影像诊断报告",
                "creation": when.isoformat(timespec="seconds"),
            }
        ]
    try:
        model = DiagnosticReport.model_validate(resource)
    except ValidationError as exc:
        raise ReportOutputError(f"report {doc.report_id}: not a valid R4B DiagnosticReport: {exc}") from exc
    checked: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    check_value_sets(checked)
    return checked


def check_value_sets(resource: Mapping[str, Any]) -> None:
    """Check a DiagnosticReport's coded values against the value sets we send and receivers expect.

    Raises ``ReportOutputError`` naming the path, the bad value and the allowed ones: a status
    outside the required binding, a category not from v2-0074, a report code we do not issue,
    an unknown interpretation, gender, presentedForm type or language tag.
    """
    problems: list[str] = []
    if resource.get("resourceType") != "DiagnosticReport":
        problems.append(f"resourceType {resource.get('resourceType')!r} is not DiagnosticReport")
    status = resource.get("status")
    if status not in REPORT_STATUSES:
        problems.append(f"status {status!r} is not in DiagnosticReport status ({', '.join(sorted(REPORT_STATUSES))})")
    for index, category in enumerate(resource.get("category", [])):
        for coding in category.get("coding", []):
            if coding.get("system") != V2_0074 or coding.get("code") not in SERVICE_SECTIONS:
                problems.append(
                    f"category[{index}] {coding.get('system')}|{coding.get('code')} is not a v2-0074 code ({V2_0074})"
                )
    codes = [c for c in resource.get("code", {}).get("coding", []) if c.get("system") == LOINC]
    if not any(c.get("code") in REPORT_CODES for c in codes):
        problems.append(f"code has no LOINC coding from {sorted(REPORT_CODES)}")
    for index, concept in enumerate(resource.get("conclusionCode", [])):
        for coding in concept.get("coding", []):
            if coding.get("system") == V3_INTERPRETATION and coding.get("code") not in INTERPRETATIONS:
                problems.append(f"conclusionCode[{index}] {coding.get('code')!r} not in {sorted(INTERPRETATIONS)}")
    for index, form in enumerate(resource.get("presentedForm", [])):
        if form.get("contentType") not in PRESENTED_FORM_TYPES:
            problems.append(f"presentedForm[{index}].contentType {form.get('contentType')!r} not allowed")
        if "language" in form and not BCP47.match(form["language"]):
            problems.append(f"presentedForm[{index}].language {form['language']!r} is not a BCP-47 tag")
    if "language" in resource and not BCP47.match(resource["language"]):
        problems.append(f"language {resource['language']!r} is not a BCP-47 tag")
    for contained in resource.get("contained", []):
        gender = contained.get("gender")
        if contained.get("resourceType") == "Patient" and gender is not None and gender not in GENDERS:
            problems.append(f"contained Patient gender {gender!r} not in {sorted(GENDERS)}")
    if problems:
        raise ReportOutputError("; ".join(problems))


def _patient(doc: ReportDocument) -> dict[str, Any]:
    # PN components (PS3.5 6.2.1.1): family^given^middle^prefix^suffix; FHIR puts middle in given.
    components = doc.patient.name.split("=")[0].split("^")
    name: dict[str, Any] = {"text": printed_name(doc.patient.name), "family": components[0]}
    given = [part for part in components[1:3] if part]
    if given:
        name["given"] = given
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "patient",
        "identifier": [{"value": doc.patient.patient_id, "assigner": {"display": doc.site_name}}],
        "name": [name],
        "gender": GENDER_CODES.get(doc.patient.sex or "", "unknown"),
    }
    born = parse_dicom_date(doc.patient.birth_date)
    if born:
        patient["birthDate"] = born.isoformat()
    return patient
