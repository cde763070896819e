"""Facts every output derives from a report document the same way: its printed times in the
consortium's time zone, the patient's age at the study, names in DICOM PN form, status words.

One place, so the PDF, the SR, the image, HL7 and FHIR never disagree on an age or a time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reading.reports.document import Addendum, CriticalCommunication, Person, ReportDocument, ReportStatus
from reading.reports.outputs.errors import ReportOutputError

STATUS_TITLES: Final = {
    ReportStatus.PRELIMINARY: "初步报告",
    ReportStatus.FINAL: "正式报告",
    ReportStatus.AMENDED: "更正报告",
}
SEX_TITLES: Final = {"M": "男", "F": "女", "O": "其他"}
CONTACT_METHOD_TITLES: Final = {
    "phone": "电话",
    "in-person": "当面",
    "portal": "平台",
    "sms": "短信",
    "wecom": "企业微信",
}


def local_time(doc: ReportDocument, moment: datetime) -> datetime:
    """``moment`` in the consortium's time zone (reports print local time, stored times are UTC).

    Raises ``ReportOutputError`` for a naive datetime (its zone is unknowable) or an unknown zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ReportOutputError(f"report {doc.report_id}: time {moment.isoformat()} has no time zone; store aware UTC")
    try:
        zone = ZoneInfo(doc.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportOutputError(f"report {doc.report_id}: unknown time zone {doc.timezone!r}") from exc
    return moment.astimezone(zone)


def document_time(doc: ReportDocument) -> datetime:
    """When this version became what it is: signed time once signed, else when it was written."""
    return local_time(doc, doc.signed_at or doc.created_at)


def dicom_date(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def dicom_time(moment: datetime) -> str:
    return moment.strftime("%H%M%S")


def dicom_datetime(moment: datetime) -> str:
    """PS3.5 6.2 DT with its UTC offset, so a receiver need not guess the zone."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def printed_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def parse_dicom_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        return None  # a malformed DA from a modality: the age is then simply not printed


def patient_age(doc: ReportDocument) -> tuple[str, str] | None:
    """The patient's age on the study date as (DICOM AS, Chinese text), e.g. ("045Y", "45岁").

    Under a month in days, under two years in months (PS3.5 6.2 AS; how Chinese reports print
    infants). None when the birth or study date is missing or malformed.
    """
    born = parse_dicom_date(doc.patient.birth_date)
    studied = parse_dicom_date(doc.study.study_date)
    if born is None or studied is None or studied < born:
        return None
    months = (studied.year - born.year) * 12 + studied.month - born.month - (1 if studied.day < born.day else 0)
    if months < 1:
        days = (studied - born).days
        return f"{days:03d}D", f"{days}天"
    if months < 24:
        return f"{months:03d}M", f"{months}月"
    years = months // 12
    return f"{min(years, 999):03d}Y", f"{years}岁"


def person_name(person: Person) -> str:
    """A reader's name in DICOM PN form (PS3.5 6.2.1): a bare "李医生" becomes "李医生^", the
    family-name-only spelling that highdicom's name check accepts."""
    name = person.display_name.strip()
    return name if "^" in name else f"{name}^"


def printed_name(dicom_name: str) -> str:
    """A PN as a Chinese reader writes it: 王^小明 → 王小明 (family then given, no separator)."""
    return "".join(dicom_name.split("=")[0].split("^")).strip()


# PS3.16 Annex L (Body Part Examined) terms as a Chinese report prints them.
BODY_PART_TITLES: Final = {
    "HEAD": "头部",
    "BRAIN": "颅脑",
    "SKULL": "颅骨",
    "NECK": "颈部",
    "CHEST": "胸部",
    "THORAX": "胸部",
    "LUNG": "肺",
    "ABDOMEN": "腹部",
    "PELVIS": "盆腔",
    "ABDOMENPELVIS": "腹盆腔",
    "CSPINE": "颈椎",
    "TSPINE": "胸椎",
    "LSPINE": "腰椎",
    "SPINE": "脊柱",
    "EXTREMITY": "四肢",
    "KNEE": "膝关节",
    "HIP": "髋关节",
    "SHOULDER": "肩关节",
}


def printed_date(value: str | None) -> str:
    parsed = parse_dicom_date(value)
    return parsed.isoformat() if parsed else ""


def study_items(doc: ReportDocument) -> list[tuple[str, str]]:
    """The patient and study lines of a printed report as (label, value), in print order."""
    age = patient_age(doc)
    body_part = (doc.study.body_part or "").upper()
    return [
        ("姓名", printed_name(doc.patient.name)),
        ("性别", SEX_TITLES.get(doc.patient.sex or "", "")),
        ("年龄", age[1] if age else ""),
        ("患者ID", doc.patient.patient_id),
        ("检查号", doc.study.accession_number or ""),
        ("检查日期", printed_date(doc.study.study_date)),
        ("检查类型", doc.study.modality),
        ("检查部位", BODY_PART_TITLES.get(body_part, doc.study.body_part or "")),
        ("检查项目", doc.study.study_description or doc.template_title),
        ("申请医生", printed_name(doc.study.referring_physician or "")),
        ("送检单位", doc.site_name),
        ("报告状态", STATUS_TITLES[doc.status]),
    ]


def signature_items(doc: ReportDocument) -> list[tuple[str, str]]:
    """The signature line: who wrote, who signed, who co-signed, and when (local time)."""
    items = [("报告医生", doc.author.display_name), ("审核医生", doc.signer.display_name if doc.signer else "")]
    if doc.cosigner is not None:
        items.append(("会诊专家", doc.cosigner.display_name))
    items.append(("签发时间", printed_time(local_time(doc, doc.signed_at)) if doc.signed_at else "未签发"))
    return items


def communication_text(doc: ReportDocument, call: CriticalCommunication) -> str:
    """One 危急值 communication as a sentence, e.g. "2024-05-06 10:45 经电话通知…（记录人：李医生）"."""
    method = CONTACT_METHOD_TITLES.get(call.method, call.method)
    return f"{printed_time(local_time(doc, call.at))} 经{method}通知{call.told}（记录人：{call.recorded_by}）"


def addendum_text(doc: ReportDocument, addendum: Addendum) -> str:
    return f"{printed_time(local_time(doc, addendum.at))} {addendum.author.display_name}：{addendum.text}"


def study_datetime(doc: ReportDocument) -> datetime | None:
    """When the study was acquired, as an aware time in the consortium's zone.

    DICOM DA/TM carry no zone (PS3.5 6.2); the site is in the consortium's. Midnight when the
    study time is missing or malformed; None without a study date.
    """
    studied = parse_dicom_date(doc.study.study_date)
    if studied is None:
        return None
    digits = (doc.study.study_time or "").split(".")[0]
    hour, minute, second = 0, 0, 0
    if len(digits) >= 4 and digits.isdigit():
        hour, minute, second = int(digits[0:2]), int(digits[2:4]), int(digits[4:6] or 0)
    try:
        naive = datetime(studied.year, studied.month, studied.day, hour, minute, second)
    except ValueError:
        naive = datetime(studied.year, studied.month, studied.day)
    return naive.replace(tzinfo=ZoneInfo(doc.timezone))
