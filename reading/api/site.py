"""``/api/site``: what a site's staff and systems see — their studies' reading state, their
signed reports, deliveries to acknowledge (a clinic behind NAT pulls its reports here),
critical results to acknowledge, and requests for a priority or a second opinion."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from pacs.dicomweb.auth import client_address, services_of
from pacs.index.models import Alert, Study
from pacs.index.types import utcnow
from reading.admin import request_reading
from reading.api.deps import SiteCaller, require_site_user, unit_of_work
from reading.api.reports import report_json
from reading.delivery import acknowledge_pull
from reading.errors import NotFound
from reading.models import CriticalResult, CriticalState, Delivery, DeliveryState, ReadingTask, Report
from reading.reports.service import acknowledge_critical

router = APIRouter(prefix="/site", tags=["site"])


def _delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "report_id": delivery.report_id,
        "study_uid": delivery.study_uid,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.state == DeliveryState.PENDING else None,
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "report_pdf": f"/api/reports/{delivery.report_id}?format=pdf",
    }


@router.get("/studies")
def site_studies(
    request: Request,
    who: SiteCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """The site's latest studies with where their reading stands (queued, being read, signed)."""
    site_id = require_site_user(who)
    with unit_of_work(request, read_only=True) as session:
        studies = session.scalars(
            select(Study)
            .where(Study.site_id == site_id)
            .order_by(Study.first_received_at.desc(), Study.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        services_of(request).audit.record(
            who,
            "site-studies",
            site_id=site_id,
            source=client_address(request),
            answered=len(studies),
            studies=[s.study_uid for s in studies][:100],
        )
        tasks: dict[int, ReadingTask] = {}
        for task in session.scalars(
            select(ReadingTask).where(ReadingTask.study_pk.in_([s.id for s in studies])).order_by(ReadingTask.id)
        ):
            tasks[task.study_pk] = task  # the latest task of each study
        return [
            {
                "study_uid": s.study_uid,
                "patient_name": s.patient_name,
                "patient_id": s.patient_id,
                "accession_number": s.accession_number,
                "study_date": s.study_date,
                "modalities": s.modalities,
                "instances": s.num_instances,
                "state": s.state,
                "reading": tasks[s.id].state if s.id in tasks else None,
                "tier": tasks[s.id].tier if s.id in tasks else None,
                "priority": tasks[s.id].priority if s.id in tasks else None,
            }
            for s in studies
        ]


@router.get("/reports")
def site_reports(
    request: Request,
    who: SiteCaller,
    since: Annotated[int, Query(ge=0, description="only reports with an id above this")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Signed report versions of the site's studies, oldest first after ``since``."""
    site_id = require_site_user(who)
    with unit_of_work(request, read_only=True) as session:
        reports = session.scalars(
            select(Report)
            .join(ReadingTask, ReadingTask.id == Report.task_id)
            .where(ReadingTask.site_id == site_id, Report.signed_at.is_not(None), Report.id > since)
            .order_by(Report.id)
            .limit(limit)
        ).all()
        return [report_json(r) for r in reports]


@router.get("/deliveries")
def site_deliveries(
    request: Request,
    who: SiteCaller,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """The site's deliveries; ``state=awaiting_pull`` lists the reports a pulling site has yet to fetch."""
    site_id = require_site_user(who)
    with unit_of_work(request, read_only=True) as session:
        statement = select(Delivery).where(Delivery.site_id == site_id).order_by(Delivery.id).limit(limit)
        if state is not None:
            statement = statement.where(Delivery.state == state)
        return [_delivery_json(d) for d in session.scalars(statement)]


@router.post("/deliveries/{delivery_id}/ack")
def site_ack_delivery(request: Request, who: SiteCaller, delivery_id: int) -> dict[str, Any]:
    """The site confirms it has the report (a pulling site, after fetching it)."""
    site_id = require_site_user(who)
    with unit_of_work(request) as session:
        return _delivery_json(acknowledge_pull(session, delivery_id, site_id=site_id, by=who.username, now=utcnow()))


@router.get("/critical")
def site_critical(request: Request, who: SiteCaller, open_only: bool = True) -> list[dict[str, Any]]:
    """Critical results (危急值) of the site's studies; by default those not yet acknowledged."""
    site_id = require_site_user(who)
    with unit_of_work(request, read_only=True) as session:
        statement = select(CriticalResult).where(CriticalResult.site_id == site_id).order_by(CriticalResult.id)
        if open_only:
            statement = statement.where(CriticalResult.state != CriticalState.ACKNOWLEDGED)
        return [
            {
                "id": c.id,
                "report_id": c.report_id,
                "study_uid": c.study_uid,
                "state": c.state,
                "raised_at": c.raised_at.isoformat(),
                "ack_due_at": c.ack_due_at.isoformat(),
                "impression": session.get_one(Report, c.report_id).impression,
            }
            for c in session.scalars(statement)
        ]


@router.post("/critical/{critical_id}/ack")
def site_ack_critical(request: Request, who: SiteCaller, critical_id: int) -> dict[str, Any]:
    site_id = require_site_user(who)
    with unit_of_work(request) as session:
        critical = acknowledge_critical(session, critical_id, site_id=site_id, by=who.username, now=utcnow())
        return {
            "id": critical.id,
            "state": critical.state,
            "acknowledged_at": critical.acknowledged_at.isoformat() if critical.acknowledged_at else None,
        }


@router.get("/alerts")
def site_alerts(
    request: Request, who: SiteCaller, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The site's alerts (the portal banner: critical results to acknowledge, refused
    instances), newest first."""
    site_id = require_site_user(who)
    with unit_of_work(request, read_only=True) as session:
        rows = session.scalars(
            select(Alert).where(Alert.site_id == site_id).order_by(Alert.id.desc()).limit(limit)
        ).all()
        return [
            {
                "id": a.id,
                "kind": a.kind,
                "study_uid": a.study_uid,
                "message": a.message,
                "created_at": a.created_at.isoformat(),
            }
            for a in rows
        ]


class RequestBody(BaseModel):
    study_uid: str = Field(min_length=1, max_length=64, pattern=r"^[0-9.]+$")
    priority: str | None = None
    second_opinion: bool = False
    clinical_info: str | None = Field(default=None, max_length=4000)


@router.post("/requests", status_code=201)
def site_request(request: Request, who: SiteCaller, body: RequestBody) -> dict[str, Any]:
    """Ask for a priority or a second opinion for one of the site's studies (before it arrives,
    or before it is routed)."""
    site_id = require_site_user(who)
    with unit_of_work(request) as session:
        owner = session.scalar(select(Study.site_id).where(Study.study_uid == body.study_uid))
        if owner is not None and owner != site_id:
            raise NotFound(f"no study {body.study_uid} of your site")  # as DICOMweb answers: nothing leaks
        row = request_reading(
            session,
            site_id=site_id,
            study_uid=body.study_uid,
            priority=body.priority,
            second_opinion=body.second_opinion,
            clinical_info=body.clinical_info,
            by=who.username,
        )
        return {
            "id": row.id,
            "study_uid": row.study_uid,
            "priority": row.priority,
            "second_opinion": row.second_opinion,
        }
