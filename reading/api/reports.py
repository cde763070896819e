"""``/api/tasks/{id}/report``, signing, addenda, critical-result communication, the templates,
and a report's renderings (PDF, FHIR, HL7 v2)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.identity.users import Principal
from pacs.index.models import Role, Study
from pacs.index.types import utcnow
from reading.api.deps import ReaderCaller, check_may_read, reading_settings, require_role, unit_of_work
from reading.errors import NotFound
from reading.models import ReadingTask, Report
from reading.reports.assemble import document_of
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.fhir import build_diagnostic_report
from reading.reports.outputs.hl7 import build_oru_r01
from reading.reports.outputs.pdf import build_pdf
from reading.reports.outputs.sr import build_sr
from reading.reports.service import (
    ReportInput,
    add_addendum,
    record_communication,
    save_report,
    sign_report,
)
from reading.reports.templates import load_templates
from reading.worklist.readers import reader_of_user

router = APIRouter(tags=["reports"])


def report_json(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "task_id": report.task_id,
        "study_uid": report.study_uid,
        "version": report.version,
        "status": report.status,
        "template_id": report.template_id,
        "fields": report.fields,
        "findings": report.findings,
        "impression": report.impression,
        "critical": report.critical,
        "referral": report.referral,
        "addendum": report.addendum,
        "author_id": report.author_id,
        "signer_id": report.signer_id,
        "signed_at": report.signed_at.isoformat() if report.signed_at else None,
        "updated_at": report.updated_at.isoformat(),
    }


class ReportBody(BaseModel):
    template_id: str = Field(min_length=1, max_length=64)
    fields: dict[str, Any] = Field(default_factory=dict)
    findings: str = ""
    impression: str = ""
    critical: bool = False
    referral: str | None = None

    def as_input(self) -> ReportInput:
        return ReportInput(self.template_id, self.fields, self.findings, self.impression, self.critical, self.referral)


class SaveBody(ReportBody):
    preliminary: bool = False


class SignBody(BaseModel):
    report: ReportBody | None = None  # save this first; without it, the saved report is signed
    cosign: bool = False  # a provincial expert signs the county preliminary the task carries


class AddendumBody(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)
    critical: bool | None = None


class CommunicationBody(BaseModel):
    told: str = Field(min_length=1, max_length=200)
    method: str
    at: AwareDatetime


@router.get("/templates")
def get_templates(who: Authenticated) -> list[dict[str, Any]]:
    """The report templates (JSON Schema each) a reader fills in."""
    return [
        {
            "id": t.id,
            "title": t.title,
            "title_en": t.title_en,
            "modalities": list(t.modalities),
            "body_parts": list(t.body_parts),
            "schema": t.schema,
        }
        for t in load_templates().values()
    ]


def _reader(session: Session, who: Principal) -> Any:
    require_role(who, Role.READER)
    return reader_of_user(session, who.user_id)


def _critical_ack(request: Request) -> timedelta:
    return timedelta(minutes=reading_settings(request).critical_ack_minutes)


@router.put("/tasks/{task_id}/report")
def put_report(request: Request, who: ReaderCaller, task_id: int, body: SaveBody) -> dict[str, Any]:
    """Save the draft (or, with ``preliminary``, the preliminary report) of a claimed task."""
    with unit_of_work(request) as session:
        report = save_report(
            session, _reader(session, who), task_id, body.as_input(), preliminary=body.preliminary, now=utcnow()
        )
        return report_json(report)


@router.post("/tasks/{task_id}/sign")
def post_sign(request: Request, who: ReaderCaller, task_id: int, body: SignBody) -> dict[str, Any]:
    """Sign the report: the task ends ``signed``, deliveries to the site are queued, and a
    critical report notifies the site at once."""
    with unit_of_work(request) as session:
        report = sign_report(
            session,
            _reader(session, who),
            task_id,
            body.report.as_input() if body.report else None,
            now=utcnow(),
            critical_ack=_critical_ack(request),
            cosign=body.cosign,
        )
        return report_json(report)


@router.post("/tasks/{task_id}/addendum")
def post_addendum(request: Request, who: ReaderCaller, task_id: int, body: AddendumBody) -> dict[str, Any]:
    """A new signed version of a signed report; the site receives it again."""
    with unit_of_work(request) as session:
        report = add_addendum(
            session,
            _reader(session, who),
            task_id,
            body.text,
            now=utcnow(),
            critical_ack=_critical_ack(request),
            critical=body.critical,
        )
        return report_json(report)


@router.post("/reports/{report_id}/communications")
def post_communication(request: Request, who: ReaderCaller, report_id: int, body: CommunicationBody) -> dict[str, Any]:
    """Record who at the site was told of a critical result, how and when."""
    with unit_of_work(request) as session:
        row = record_communication(
            session, _reader(session, who), report_id, told=body.told, method=body.method, at=body.at, now=utcnow()
        )
        return {"id": row.id, "report_id": report_id, "told": row.told, "method": row.method, "at": row.at.isoformat()}


def _visible_report(session: Session, who: Principal, report_id: int) -> Report:
    """A report the caller may see: his site's (site users), his consortium's (admin, QA), or
    one of a task he may read (readers). Another site's report is 404, not 403."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}")
    task = session.get_one(ReadingTask, report.task_id)
    if who.role == Role.READER:
        check_may_read(session, who, task)
    elif not who.scope.allows(task.site_id, report.study_uid) or report.signed_at is None:
        raise NotFound(f"no report {report_id}")  # drafts and preliminaries never leave the centre
    return report


RENDERINGS = {
    "pdf": "application/pdf",
    "fhir": "application/fhir+json",
    "hl7": "x-application/hl7-v2+er7",
    "sr": "application/dicom",
}


@router.get("/reports/{report_id}")
def get_report(
    request: Request,
    who: Authenticated,
    report_id: int,
    format: Annotated[str, Query(pattern="^(json|pdf|fhir|hl7|sr)$")] = "json",
) -> Any:
    """A report version as JSON, or rendered: ``format=pdf`` (the printed report), ``fhir``
    (an R4 DiagnosticReport), ``hl7`` (an ORU^R01 message), ``sr`` (the DICOM Comprehensive SR,
    Part 10: what a clinic edge that pulls its reports keeps beside the PDF)."""
    with unit_of_work(request, read_only=True) as session:
        report = _visible_report(session, who, report_id)
        task = session.get_one(ReadingTask, report.task_id)
        services_of(request).audit.record_once(
            who,
            f"report-{format}",
            study_uid=report.study_uid,
            patient_id=session.scalar(select(Study.patient_id).where(Study.id == task.study_pk)),
            site_id=task.site_id,
            source=client_address(request),
        )
        if format == "json":
            return report_json(report)
        document = document_of(session, report.id, centre_name=reading_settings(request).centre_name)
    try:
        if format == "pdf":
            content: bytes = build_pdf(document)
        elif format == "sr":
            buffer = io.BytesIO()
            build_sr(document).save_as(buffer, enforce_file_format=True)
            content = buffer.getvalue()
        elif format == "fhir":
            resource = build_diagnostic_report(document, pdf=build_pdf(document))
            content = json.dumps(resource, ensure_ascii=False).encode()
        else:
            content = build_oru_r01(
                document, sending_facility="YUNYING", receiving_facility=document.site_name
            ).encode()
    except ReportOutputError as exc:
        raise HTTPException(422, f"report {report_id} cannot be rendered as {format}: {exc}") from None
    return Response(content, media_type=RENDERINGS[format])
