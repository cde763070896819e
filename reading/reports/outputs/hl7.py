r"""The report as an HL7 v2.5 ORU^R01 (unsolicited observation result), for sites whose HIS
takes results over MLLP rather than DICOM or FHIR.

Layout follows the IHE Radiology "results" convention most Chinese HIS vendors copy:

    MSH  … |ORU^R01^ORU_R01| control id |P|2.5| … |UNICODE UTF-8
    PID  PID-3 the site's patient id, PID-5 the name (family^given), birth date, sex
    PV1  patient class
    ORC  RE (observations to follow)
    OBR  accession as filler order number, study time, result status P/F/C, interpreter
    OBX  HD   the Study Instance UID (DCM 113014)
    OBX  ST   one per structured field
    OBX  FT   findings (LOINC 18782-3), impression (19005-8, abnormal flag AA when critical),
              recommendation (18783-1), addenda
    NTE  after the impression: each 危急值 communication

Text is escaped for ER7 (HL7 v2.5 2.7) before it is set, since hl7apy parses a string
assigned to a field as ER7 and would split a "^" in a finding into components. Line breaks in
FT are the formatting command ``\.br\`` (v2.5 2.7.6), which hl7apy does not know and would
re-escape to ``\E\.br\E\`` (measured with hl7apy 1.3.5): they travel through hl7apy as a
private-use character and become ``\.br\`` in the encoded message.
"""

from __future__ import annotations

from typing import Final

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message
from hl7apy.exceptions import HL7apyException

from reading.reports.document import ReportDocument, ReportStatus
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.facts import (
    addendum_text,
    communication_text,
    document_time,
    study_datetime,
)

SENDING_APPLICATION: Final = "YUNYING"
# HL7 table 0085 (observation result status) and 0038 (order status), by report status.
RESULT_STATUS: Final = {ReportStatus.PRELIMINARY: "P", ReportStatus.FINAL: "F", ReportStatus.AMENDED: "C"}
ORDER_STATUS: Final = {ReportStatus.PRELIMINARY: "IP", ReportStatus.FINAL: "CM", ReportStatus.AMENDED: "CM"}
# HL7 table 0074 (diagnostic service section): CT has its own code, the rest is radiology.
SERVICE_SECTION: Final = {"CT": "CT", "MR": "NMR", "US": "RUS"}
STUDY_UID_CODE: Final = "113014^DICOM Study^DCM"
FINDINGS_CODE: Final = "18782-3^Radiology Study observation (narrative)^LN"
IMPRESSION_CODE: Final = "19005-8^Radiology Imaging study [Impression] (narrative)^LN"
RECOMMENDATION_CODE: Final = "18783-1^Radiology Study recommendation (narrative)^LN"
ADDENDUM_CODE: Final = "ADDENDUM^补充报告^99YY"
REPORT_CODE: Final = "18748-4^Diagnostic imaging report^LN"
LINE_BREAK: Final = "\\.br\\"
_LINE_BREAK_MARK: Final = "\ue000"  # Unicode private use: never meaningful in report text


def escape_text(text: str) -> str:
    """Text for an ST/FT field as hl7apy must be given it: delimiters as HL7 escapes, line breaks
    as a mark that ``build_oru_r01`` turns into ``\\.br\\`` after encoding."""
    escaped = text.replace(_LINE_BREAK_MARK, "").replace("\\", "\\E\\")
    for delimiter, escape in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        escaped = escaped.replace(delimiter, escape)
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", _LINE_BREAK_MARK)


def _hl7_time(doc: ReportDocument) -> str:
    return document_time(doc).strftime("%Y%m%d%H%M%S%z")


def _person(username: str, display_name: str) -> str:
    """An XCN (id^family name) for a reader; our display names are one family-name component."""
    return f"{escape_text(username)}^{escape_text(display_name)}"


def build_oru_r01(doc: ReportDocument, *, sending_facility: str, receiving_facility: str) -> str:
    """The report as an ER7-encoded ORU^R01 message (segments separated by CR), validated.

    Raises ``ReportOutputError`` when the patient id is missing (PID-3 is required: the HIS files
    the result by it) or hl7apy's strict validation refuses the message.
    """
    if not doc.patient.patient_id.strip():
        raise ReportOutputError(
            f"report {doc.report_id}: patient has no id; PID-3 is required for ORU^R01 — "
            "fix the study's Patient ID at the site before sending the result"
        )
    reader = doc.signer or doc.author
    status = RESULT_STATUS[doc.status]
    try:
        message = Message("ORU_R01", version="2.5", validation_level=VALIDATION_LEVEL.STRICT)
        msh = message.msh
        msh.msh_3 = SENDING_APPLICATION
        msh.msh_4 = escape_text(sending_facility)
        msh.msh_6 = escape_text(receiving_facility)
        msh.msh_7 = _hl7_time(doc)
        msh.msh_9 = "ORU^R01^ORU_R01"
        # One control id per report version: a retried delivery is recognisably the same message.
        msh.msh_10 = f"Y{doc.report_id}V{doc.version}"
        msh.msh_11 = "P"
        msh.msh_17 = "CHN"
        msh.msh_18 = "UNICODE UTF-8"

        result = message.add_group("ORU_R01_PATIENT_RESULT")
        patient = result.add_group("ORU_R01_PATIENT")
        pid = patient.pid
        pid.pid_1 = "1"
        pid.pid_3 = f"{escape_text(doc.patient.patient_id)}^^^{escape_text(receiving_facility)}^PI"
        # A DICOM PN (family^given^middle…) already has XPN's component order.
        pid.pid_5 = "^".join(escape_text(part) for part in doc.patient.name.split("=")[0].split("^"))
        if doc.patient.birth_date:
            pid.pid_7 = doc.patient.birth_date
        if doc.patient.sex in ("M", "F", "O"):
            pid.pid_8 = doc.patient.sex
        # Table 0004: the centre is not told whether the patient was admitted; U = unknown.
        patient.add_group("ORU_R01_VISIT").pv1.pv1_2 = "U"

        order = result.add_group("ORU_R01_ORDER_OBSERVATION")
        accession = escape_text(doc.study.accession_number or "")
        order.orc.orc_1 = "RE"
        if accession:
            order.orc.orc_3 = accession
        order.orc.orc_5 = ORDER_STATUS[doc.status]
        obr = order.obr
        obr.obr_1 = "1"
        if accession:
            obr.obr_3 = accession
        obr.obr_4 = REPORT_CODE
        studied = study_datetime(doc)
        if studied is not None:
            obr.obr_7 = studied.strftime("%Y%m%d%H%M%S%z")
        if doc.study.referring_physician:
            obr.obr_16 = "^" + "^".join(escape_text(p) for p in doc.study.referring_physician.split("^"))
        obr.obr_22 = _hl7_time(doc)
        obr.obr_24 = SERVICE_SECTION.get(doc.study.modality.upper(), "RAD")
        obr.obr_25 = status
        obr.obr_32 = f"{escape_text(reader.username)}&{escape_text(reader.display_name)}"

        observations: list[tuple[str, str, str, str]] = [("HD", STUDY_UID_CODE, doc.study.study_uid, "")]
        observations += [
            ("ST", f"{field.key}^{escape_text(field.label)}^99YY", escape_text(field.value), "") for field in doc.fields
        ]
        if doc.findings.strip():
            observations.append(("FT", FINDINGS_CODE, escape_text(doc.findings), ""))
        # Table 0078: AA = critically abnormal, the flag a HIS raises an alarm on.
        observations.append(("FT", IMPRESSION_CODE, escape_text(doc.impression), "AA" if doc.critical else ""))
        if doc.referral:
            observations.append(("FT", RECOMMENDATION_CODE, escape_text(doc.referral), ""))
        observations += [("FT", ADDENDUM_CODE, escape_text(addendum_text(doc, a)), "") for a in doc.addenda]

        for number, (value_type, code, value, flag) in enumerate(observations, start=1):
            group = order.add_group("ORU_R01_OBSERVATION")
            _observation(group, number, value_type, code, value, flag, status, doc, reader.username)
            if code == IMPRESSION_CODE and doc.critical:
                for index, call in enumerate(doc.critical_communications, start=1):
                    note = group.add_segment("NTE")
                    note.nte_1 = str(index)
                    note.nte_3 = escape_text(f"危急值通报：{communication_text(doc, call)}")

        message.validate()
        encoded: str = message.to_er7().replace(_LINE_BREAK_MARK, LINE_BREAK)
    except HL7apyException as exc:
        raise ReportOutputError(f"report {doc.report_id}: ORU^R01 refused by hl7apy validation: {exc}") from exc
    return encoded


def _observation(
    group: Group,
    number: int,
    value_type: str,
    code: str,
    value: str,
    flag: str,
    status: str,
    doc: ReportDocument,
    responsible: str,
) -> None:
    obx = group.obx
    obx.obx_1 = str(number)
    obx.obx_2 = value_type
    obx.obx_3 = code
    obx.obx_5 = value
    if flag:
        obx.obx_8 = flag
    obx.obx_11 = status
    obx.obx_14 = _hl7_time(doc)
    obx.obx_16 = escape_text(responsible)
