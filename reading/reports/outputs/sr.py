"""The report as a DICOM Comprehensive SR following TID 2000 (Basic Diagnostic Imaging Report).

highdicom has no TID 2000 class (FIELD-NOTES, "Reports and outputs"), so the tree is built here
from its generic content items, in the order PS3.16 TID 2000 lists them:

    CONTAINER (LN 18748-4 "Diagnostic imaging report"), TID 2000
      HAS CONCEPT MOD  TID 1204 language: zh-CN
      HAS OBS CONTEXT  TID 1001/1002 person observer: author (and signer, co-signer)
      CONTAINS CONTAINER (DCM 121070 "Findings")        — TID 2001 Basic Diagnostic Imaging Report Section
        CONTAINS TEXT  one per structured field, named by a local code with its Chinese label
        CONTAINS TEXT  (DCM 121071 "Finding")            the free-text findings, then addenda
      CONTAINS CONTAINER (DCM 121072 "Impressions")
        CONTAINS TEXT  (DCM 121073 "Impression")
        CONTAINS CODE  (99YUNYING CRITICAL "危急值") = SCT Yes, and one TEXT per communication
      CONTAINS CONTAINER (DCM 121074 "Recommendations")  only with a referral
        CONTAINS TEXT  (DCM 121075 "Recommendation")

Verification follows the status (PS3.3 C.17.2): a preliminary is PARTIAL / UNVERIFIED /
PRELIMINARY; a signed or amended report is COMPLETE / VERIFIED / FINAL with the signer as
Verifying Observer, and a later version lists its predecessors' UIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage
from pydicom.valuerep import DA, TM

from reading.reports.document import Person, ReportDocument, ReportStatus
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.facts import (
    addendum_text,
    communication_text,
    dicom_date,
    dicom_datetime,
    dicom_time,
    document_time,
    local_time,
    person_name,
)
from reading.reports.outputs.modules import MANUFACTURER, SERIES_NUMBERS, UTF8, patient_and_study
from reading.reports.outputs.uids import output_uid, series_uid

SERIES_DESCRIPTION: Final = "云影诊断报告"
# PS3.16 8.2: a coding scheme designator beginning "99" is local to its issuer.
LOCAL_SCHEME: Final = "99YUNYING"

DOCUMENT_TITLE: Final = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging report")
LANGUAGE_ZH_CN: Final = hd.sr.CodedConcept("zh-CN", "RFC5646", "Chinese (China)")
FINDINGS: Final = hd.sr.CodedConcept("121070", "DCM", "Findings")
FINDING: Final = hd.sr.CodedConcept("121071", "DCM", "Finding")
IMPRESSIONS: Final = hd.sr.CodedConcept("121072", "DCM", "Impressions")
IMPRESSION: Final = hd.sr.CodedConcept("121073", "DCM", "Impression")
RECOMMENDATIONS: Final = hd.sr.CodedConcept("121074", "DCM", "Recommendations")
RECOMMENDATION: Final = hd.sr.CodedConcept("121075", "DCM", "Recommendation")
CRITICAL_RESULT: Final = hd.sr.CodedConcept("CRITICAL", LOCAL_SCHEME, "危急值")
CRITICAL_COMMUNICATION: Final = hd.sr.CodedConcept("CRITCOMM", LOCAL_SCHEME, "危急值通报")
ADDENDUM: Final = hd.sr.CodedConcept("ADDENDUM", LOCAL_SCHEME, "补充报告")


def build_sr(doc: ReportDocument) -> Dataset:
    """The report as a Comprehensive SR instance (a ``highdicom.sr.ComprehensiveSR``).

    Raises ``ReportOutputError`` when a signed status has no signer or signed time, or when a
    time has no zone.
    """
    verified = doc.status in (ReportStatus.FINAL, ReportStatus.AMENDED)
    if verified and (doc.signer is None or doc.signed_at is None):
        raise ReportOutputError(
            f"report {doc.report_id} v{doc.version} is {doc.status} but has no signer/signed_at; "
            "sign it first or send it as preliminary"
        )
    when = document_time(doc)
    evidence = _evidence(doc)
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=_content(doc),
        series_instance_uid=series_uid(doc, "sr"),
        series_number=SERIES_NUMBERS["sr"],
        sop_instance_uid=output_uid(doc, "sr"),
        instance_number=doc.version,
        manufacturer=MANUFACTURER,
        # A preliminary is still open to the co-signer's changes: PARTIAL (PS3.3 C.17.2.1).
        is_complete=verified,
        is_final=verified,
        is_verified=verified,
        institution_name=doc.centre_name,
        verifying_observer_name=person_name(doc.signer) if doc.signer else None,
        verifying_organization=doc.centre_name if verified else None,
        previous_versions=_previous_versions(doc) or None,
        # FIELD-NOTES: highdicom copies the first evidence's character set; say UTF-8 outright.
        specific_character_set=UTF8,
        series_description=SERIES_DESCRIPTION,
        content_date=dicom_date(when),
        content_time=dicom_time(when),
        series_date=dicom_date(when),
        series_time=dicom_time(when),
    )
    # highdicom stamps these with the build machine's clock; a rebuilt report must be identical.
    sr.InstanceCreationDate = DA(dicom_date(when))
    sr.InstanceCreationTime = TM(dicom_time(when))
    sr.TimezoneOffsetFromUTC = when.strftime("%z")
    for equipment in sr.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = dicom_datetime(when)
    if verified and doc.signed_at is not None:
        sr.VerifyingObserverSequence[0].VerificationDateTime = dicom_datetime(local_time(doc, doc.signed_at))
    if not doc.evidence:
        # No instance is known: the stand-in only carried patient and study into highdicom,
        # and must not be listed as evidence a receiver would go looking for.
        del sr.CurrentRequestedProcedureEvidenceSequence
    dataset: Dataset = sr
    return dataset


def _evidence(doc: ReportDocument) -> list[Dataset]:
    """One minimal data set per instance read (Patient/Study modules + its three UIDs).

    With no evidence recorded, one stand-in for the study: highdicom takes patient and study
    from its first evidence item and refuses an empty list. ``build_sr`` drops it afterwards.
    """
    refs = doc.evidence or ()
    items: list[Dataset] = []
    for ref in refs:
        ds = patient_and_study(doc)
        ds.SeriesInstanceUID = ref.series_uid
        ds.SOPClassUID = ref.sop_class_uid
        ds.SOPInstanceUID = ref.sop_instance_uid
        items.append(ds)
    if not items:
        stand_in = patient_and_study(doc)
        stand_in.SeriesInstanceUID = series_uid(doc, "sr")
        stand_in.SOPClassUID = ComprehensiveSRStorage
        stand_in.SOPInstanceUID = output_uid(doc, "sr", version=0)
        items.append(stand_in)
    return items


def _previous_versions(doc: ReportDocument) -> list[Dataset]:
    """Versions 1 … n-1 of this report by their deterministic UIDs (Predecessor Documents Sequence)."""
    previous: list[Dataset] = []
    for version in range(1, doc.version):
        ds = Dataset()
        ds.StudyInstanceUID = doc.study.study_uid
        ds.SeriesInstanceUID = series_uid(doc, "sr")
        ds.SOPClassUID = ComprehensiveSRStorage
        ds.SOPInstanceUID = output_uid(doc, "sr", version=version)
        previous.append(ds)
    return previous


def _observer(person: Person, organization: str) -> list[hd.sr.ContentItem]:
    attributes = hd.sr.PersonObserverIdentifyingAttributes(
        name=person_name(person), login_name=person.username, organization_name=organization
    )
    return _items(hd.sr.ObserverContext(observer_type=codes.cid270.Person, observer_identifying_attributes=attributes))


def _items(template: Sequence[Dataset]) -> list[hd.sr.ContentItem]:
    # highdicom's templates hold content items but are typed as plain pydicom Sequences.
    return cast(list[hd.sr.ContentItem], list(template))


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type="CONTAINS")


def _section(name: hd.sr.CodedConcept, items: list[hd.sr.ContentItem]) -> hd.sr.ContainerContentItem:
    section = hd.sr.ContainerContentItem(name=name, relationship_type="CONTAINS")
    section.ContentSequence = hd.sr.ContentSequence(items)
    return section


def _content(doc: ReportDocument) -> hd.sr.ContainerContentItem:
    """The TID 2000 tree (see the module docstring)."""
    root = hd.sr.ContainerContentItem(name=DOCUMENT_TITLE, template_id="2000")
    items: list[hd.sr.ContentItem] = _items(hd.sr.LanguageOfContentItemAndDescendants(LANGUAGE_ZH_CN))
    observers = [doc.author]
    for extra in (doc.signer, doc.cosigner):
        if extra is not None and extra.username not in {p.username for p in observers}:
            observers.append(extra)
    for person in observers:
        items.extend(_observer(person, doc.centre_name))

    findings: list[hd.sr.ContentItem] = [
        # Long codes (over 16 characters) go to LongCodeValue (PS3.3 8.8); highdicom picks it.
        _text(hd.sr.CodedConcept(f"{doc.template_id}.{field.key}", LOCAL_SCHEME, field.label), field.value)
        for field in doc.fields
    ]
    if doc.findings.strip():
        findings.append(_text(FINDING, doc.findings))
    findings.extend(_text(ADDENDUM, addendum_text(doc, addendum)) for addendum in doc.addenda)
    if findings:
        items.append(_section(FINDINGS, findings))

    impressions: list[hd.sr.ContentItem] = [_text(IMPRESSION, doc.impression)]
    if doc.critical:
        impressions.append(
            hd.sr.CodeContentItem(name=CRITICAL_RESULT, value=codes.SCT.Yes, relationship_type="CONTAINS")
        )
        impressions.extend(
            _text(CRITICAL_COMMUNICATION, communication_text(doc, c)) for c in doc.critical_communications
        )
    items.append(_section(IMPRESSIONS, impressions))

    if doc.referral:
        items.append(_section(RECOMMENDATIONS, [_text(RECOMMENDATION, doc.referral)]))
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root
