"""A report as the outputs see it: plain, frozen values gathered from the index once, so every
output (DICOM SR, Encapsulated PDF, FHIR, HL7 v2, a rendered image) is built from the same
facts and none of them touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ReportStatus(StrEnum):
    """PS3.3 C.17.2 (SR Document General): what a receiving system should make of it."""

    PRELIMINARY = "preliminary"
    FINAL = "final"  # signed
    AMENDED = "amended"  # an addendum after signing: a new version that replaces the last


@dataclass(frozen=True)
class ReportPatient:
    patient_id: str
    name: str  # decoded text in the DICOM PN form, e.g. "王^小明" (never bytes, never GB18030)
    birth_date: str | None = None  # YYYYMMDD
    sex: str | None = None  # M | F | O


@dataclass(frozen=True)
class ReportStudy:
    study_uid: str
    accession_number: str | None
    study_date: str | None  # YYYYMMDD
    study_time: str | None
    study_description: str | None
    modality: str  # the study's main modality, e.g. CT, DX
    body_part: str | None
    referring_physician: str | None
    study_id: str | None = None


@dataclass(frozen=True)
class EvidenceRef:
    """One instance the report was read from (PS3.3 C.17.2.3, Current Requested Procedure Evidence)."""

    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class Person:
    username: str
    display_name: str  # e.g. "李医生"
    tier: str | None = None  # county | provincial, for readers


@dataclass(frozen=True)
class CriticalCommunication:
    """危急值: who at the site was told, how, when, by whom."""

    told: str
    method: str  # phone | in-person | portal | sms | wecom
    at: datetime
    recorded_by: str


@dataclass(frozen=True)
class Addendum:
    at: datetime
    author: Person
    text: str


@dataclass(frozen=True)
class FieldValue:
    """One structured field of the template, ready to print: its label and its value as text."""

    key: str
    label: str  # in the report's language (Chinese)
    value: str


@dataclass(frozen=True)
class ReportDocument:
    report_id: int
    version: int  # 1 for the first signed report, +1 per addendum
    status: ReportStatus
    centre_name: str  # the reading centre, e.g. "东县医学影像诊断中心"
    site_name: str  # the originating site, e.g. "东乡镇卫生院"
    patient: ReportPatient
    study: ReportStudy
    template_id: str  # e.g. ct_head
    template_title: str  # e.g. "头颅CT平扫"
    fields: tuple[FieldValue, ...]
    findings: str
    impression: str
    critical: bool
    author: Person
    signer: Person | None  # None while preliminary
    signed_at: datetime | None  # timezone-aware UTC
    created_at: datetime
    timezone: str = "Asia/Shanghai"  # the consortium's, for printed times
    cosigner: Person | None = None  # a provincial expert co-signing a county preliminary
    referral: str | None = None  # e.g. "建议转诊至县医院进一步检查"
    critical_communications: tuple[CriticalCommunication, ...] = ()
    addenda: tuple[Addendum, ...] = ()
    evidence: tuple[EvidenceRef, ...] = field(default_factory=tuple)
