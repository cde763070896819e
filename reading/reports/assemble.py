"""Gathering a report version's facts from the index into a ``ReportDocument`` once, and the
objects a delivery sends, so every output is built from the same facts."""

from __future__ import annotations

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.index.models import Consortium, Instance, Patient, Series, Site, Study, User
from reading.errors import NotFound
from reading.models import CriticalCommunication, Reader, ReadingTask, Report, ReportStatus
from reading.reports.document import (
    Addendum,
    EvidenceRef,
    Person,
    ReportDocument,
    ReportPatient,
    ReportStudy,
)
from reading.reports.document import CriticalCommunication as CommunicationFact
from reading.reports.document import ReportStatus as DocumentStatus
from reading.reports.templates import field_values, load_templates
from reading.worklist.routing import main_modality

STATUS_OF = {
    ReportStatus.DRAFT: DocumentStatus.PRELIMINARY,
    ReportStatus.PRELIMINARY: DocumentStatus.PRELIMINARY,
    ReportStatus.FINAL: DocumentStatus.FINAL,
    ReportStatus.AMENDED: DocumentStatus.AMENDED,
}


def _person(session: Session, reader_id: int | None) -> Person | None:
    if reader_id is None:
        return None
    found = session.execute(
        select(Reader, User).join(User, User.id == Reader.user_id).where(Reader.id == reader_id)
    ).first()
    if found is None:
        return None
    reader, user = found
    return Person(user.username, user.display_name or user.username, reader.tier)


def document_of(session: Session, report_id: int, *, centre_name: str = "") -> ReportDocument:
    """The document of one report version. Raises ``NotFound`` for an unknown report."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}")
    task = session.get_one(ReadingTask, report.task_id)
    study = session.get_one(Study, task.study_pk)
    site = session.get_one(Site, study.site_id)
    consortium = session.get_one(Consortium, site.consortium_id)
    patient = session.get_one(Patient, study.patient_pk)
    template = load_templates().get(report.template_id)
    versions = session.scalars(
        select(Report).where(Report.task_id == task.id, Report.version <= report.version).order_by(Report.version)
    ).all()
    addenda = tuple(
        Addendum(v.signed_at or v.created_at, _person(session, v.author_id) or Person("?", "?"), v.addendum)
        for v in versions
        if v.addendum
    )
    communications = tuple(
        CommunicationFact(c.told, c.method, c.at, c.recorded_by)
        for c in session.scalars(
            select(CriticalCommunication)
            .where(
                CriticalCommunication.report_id.in_([v.id for v in versions]),
                *([CriticalCommunication.recorded_at <= report.signed_at] if report.signed_at else []),
            )
            .order_by(CriticalCommunication.at)
        )
    )
    evidence = tuple(
        EvidenceRef(series_uid, sop_class, sop_uid)
        for series_uid, sop_class, sop_uid in session.execute(
            select(Series.series_uid, Instance.sop_class_uid, Instance.sop_instance_uid)
            .join(Series, Series.id == Instance.series_pk)
            .where(Series.study_pk == study.id, Instance.is_current.is_(True))
            .order_by(Series.series_number, Instance.instance_number, Instance.id)
        )
    )
    author = _person(session, report.author_id)
    assert author is not None  # every report has an author (a foreign key to reader)
    return ReportDocument(
        report_id=report.id,
        version=report.version,
        status=STATUS_OF[ReportStatus(report.status)],
        centre_name=centre_name or f"{consortium.name}影像诊断中心",
        site_name=site.name,
        patient=ReportPatient(
            study.patient_id or patient.patient_id, study.patient_name or "", patient.birth_date, patient.sex
        ),
        study=ReportStudy(
            study_uid=study.study_uid,
            accession_number=study.accession_number,
            study_date=study.study_date,
            study_time=study.study_time,
            study_description=study.study_description,
            modality=main_modality(study.modalities) or "OT",
            body_part=study.body_part,
            referring_physician=study.referring_physician,
            study_id=study.study_id,
        ),
        template_id=report.template_id,
        template_title=template.title if template else report.template_id,
        fields=field_values(report.template_id, report.fields) if template else (),
        findings=report.findings,
        impression=report.impression,
        critical=report.critical,
        author=author,
        signer=_person(session, report.signer_id),
        signed_at=report.signed_at,
        created_at=report.created_at,
        timezone=consortium.timezone,
        referral=report.referral,
        critical_communications=communications,
        addenda=addenda,
        evidence=evidence,
    )


def delivery_objects(session: Session, report_id: int, site: Site, *, centre_name: str = "") -> list[Dataset]:
    """The DICOM objects a delivery sends: the SR and the Encapsulated PDF of the version, and
    the report as an image for a site whose PACS shows neither."""
    from reading.reports.outputs import dicom_outputs
    from reading.reports.outputs.pdf import build_pdf

    document = document_of(session, report_id, centre_name=centre_name)
    return dicom_outputs(document, build_pdf(document), with_image=site.return_report_image)
