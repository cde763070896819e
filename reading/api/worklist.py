"""``/api/worklist`` and ``/api/tasks``: the reader's worklist, claims, release, escalation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import client_address, services_of
from pacs.index.models import Consortium, Patient, Role, Site, Study
from pacs.index.types import utcnow
from reading.api.deps import ReaderCaller, check_may_read, reading_settings, refused, require_role, unit_of_work
from reading.api.reports import report_json
from reading.errors import Invalid, NotFound, OutOfScope, Refused
from reading.models import Priority, Reader, ReadingTask, SavedView, TaskState
from reading.reports.service import carried_report, latest_report
from reading.worklist.queries import Filters, WorklistRow, worklist
from reading.worklist.readers import reader_of_user
from reading.worklist.saved_views import MAX_NAME, delete_view, save_view, views_of
from reading.worklist.tasks import claim, claim_next, escalate_by_reader, get_task, release, renew

router = APIRouter(tags=["worklist"])


def _task_json(task: ReadingTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "study_uid": task.study_uid,
        "site_id": task.site_id,
        "tier": task.tier,
        "group_id": task.group_id,
        "state": task.state,
        "priority": task.priority,
        "deadline_at": task.deadline_at.isoformat(),
        "overdue": task.deadline_at <= utcnow() and task.state in {"queued", "claimed", "preliminary"},
        "modality": task.modality,
        "body_part": task.body_part,
        "route_reason": task.route_reason,
        "ai_flags": task.ai_flags,
        "claimed_by": task.claimed_by,
        "lease_expires_at": task.lease_expires_at.isoformat() if task.lease_expires_at else None,
        "escalated_from": task.escalated_from_id,
        "escalation_reason": task.escalation_reason,
        "new_images": task.new_images,
        "created_at": task.created_at.isoformat(),
    }


def _row_json(row: WorklistRow, reader: Reader) -> dict[str, Any]:
    return {
        **_task_json(row.task),
        "mine": row.task.claimed_by == reader.id,
        "patient_name": row.patient_name,
        "patient_id": row.patient_id,
        "patient_birth_date": row.patient_birth_date,
        "patient_sex": row.patient_sex,
        "study_date": row.study_date,
        "received_at": row.received_at.isoformat() if row.received_at else None,
        "accession_number": row.accession_number,
        "study_description": row.study_description,
        "site": row.site_name,
        "instances": row.num_instances,
    }


def _reader(session: Session, who: Any) -> Reader:
    require_role(who, Role.READER)
    return reader_of_user(session, who.user_id)


@router.get("/worklist")
def get_worklist(
    request: Request,
    who: ReaderCaller,
    state: Annotated[list[TaskState] | None, Query(description="queued, claimed, preliminary, signed, …")] = None,
    site: Annotated[int | None, Query(description="a site id")] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    priority: Priority | None = None,
    day: Annotated[date | None, Query(alias="date", description="tasks created that day (YYYY-MM-DD)")] = None,
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """The tasks the reader may read, stat first then nearest deadline, with counts per state."""
    with unit_of_work(request, read_only=True) as session:
        reader = _reader(session, who)
        timezone = session.get_one(Consortium, reader.consortium_id).timezone if day else "Asia/Shanghai"
        filters = Filters(
            states=tuple(state) if state else Filters().states,
            site_id=site,
            modality=modality.upper() if modality else None,
            priority=priority.value if priority else None,
            day=day,
            timezone=timezone,
            mine=mine,
        )
        # The token check computed the reader's sites (his grants): the worklist reuses them.
        rows, counts = worklist(
            session, reader, filters, now=utcnow(), limit=limit, offset=offset, site_ids=who.scope.site_ids
        )
        services_of(request).audit.record(
            who,
            "worklist",
            source=client_address(request),
            answered=len(rows),
            studies=[row.task.study_uid for row in rows][:100],
        )
        answer = {"tasks": [_row_json(row, reader) for row in rows], "counts": counts, "limit": limit, "offset": offset}
    # Plain JSON values already: skip FastAPI's generic encoder walking 50 rows on every refresh.
    return JSONResponse(answer)


@router.get("/tasks/{task_id}")
def get_task_detail(request: Request, who: ReaderCaller, task_id: int) -> dict[str, Any]:
    """One task with its study, the routing explanation, the report being written and, for an
    escalated task, the county's preliminary report and the escalation reason."""
    with unit_of_work(request, read_only=True) as session:
        reader = _reader(session, who)
        task = get_task(session, task_id)
        check_may_read(session, who, task, reader=reader)
        study = session.get_one(Study, task.study_pk)
        patient = session.get_one(Patient, study.patient_pk)
        site = session.get_one(Site, task.site_id)
        report = latest_report(session, task.id)
        carried = carried_report(session, task)
        services_of(request).audit.record_once(
            who,
            "open-task",
            study_uid=task.study_uid,
            patient_id=study.patient_id,
            site_id=task.site_id,
            source=client_address(request),
        )
        return {
            **_task_json(task),
            "mine": task.claimed_by == reader.id,
            "site": site.name,
            "study": {
                "patient_name": study.patient_name,
                "patient_id": study.patient_id,
                "patient_birth_date": patient.birth_date,
                "patient_sex": patient.sex,
                "body_part": study.body_part,
                "accession_number": study.accession_number,
                "study_date": study.study_date,
                "study_description": study.study_description,
                "modalities": study.modalities,
                "instances": study.num_instances,
            },
            "report": report_json(report) if report else None,
            "carried_report": report_json(carried) if carried else None,
        }


def _lease(request: Request) -> timedelta:
    return timedelta(seconds=reading_settings(request).reading_lease_s)


@router.post("/tasks/{task_id}/claim")
def post_claim(request: Request, who: ReaderCaller, task_id: int) -> dict[str, Any]:
    """Claim a queued task (409 when someone else has it); claiming one's own renews it."""
    with unit_of_work(request) as session:
        task = claim(session, _reader(session, who), task_id, lease=_lease(request), now=utcnow())
        return _task_json(task)


@router.post("/worklist/next")
def post_claim_next(request: Request, who: ReaderCaller) -> dict[str, Any]:
    """Claim the first queued task of the worklist; 404 when there is none."""
    with unit_of_work(request) as session:
        task = claim_next(session, _reader(session, who), lease=_lease(request), now=utcnow())
        if task is None:
            raise NotFound("no queued task in your worklist")
        return _task_json(task)


@router.post("/tasks/{task_id}/renew")
def post_renew(request: Request, who: ReaderCaller, task_id: int) -> dict[str, Any]:
    """Extend the claim while reading (the viewer calls this)."""
    with unit_of_work(request) as session:
        return _task_json(renew(session, _reader(session, who), task_id, lease=_lease(request), now=utcnow()))


@router.post("/tasks/{task_id}/release")
def post_release(request: Request, who: ReaderCaller, task_id: int) -> dict[str, Any]:
    with unit_of_work(request) as session:
        return _task_json(release(session, _reader(session, who), task_id, now=utcnow()))


class EscalationBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/tasks/{task_id}/escalate")
def post_escalate(request: Request, who: ReaderCaller, task_id: int, body: EscalationBody) -> dict[str, Any]:
    """End the county task as escalated; answers the new provincial task."""
    with unit_of_work(request) as session:
        if not body.reason.strip():
            raise Invalid("an escalation needs a reason the provincial expert will read")
        task = escalate_by_reader(session, _reader(session, who), task_id, reason=body.reason, now=utcnow())
        return _task_json(task)


class ViewFilters(BaseModel):
    """The worklist page's filters, as its selects hold them ("" is "any")."""

    model_config = ConfigDict(extra="forbid")
    state: TaskState | Literal[""] = ""
    priority: Priority | Literal[""] = ""
    modality: str = Field(default="", max_length=16)
    site: str = Field(default="", max_length=20, pattern=r"^[0-9]*$", description="a site id, or empty")
    mine: bool = False


class ViewBody(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    filters: ViewFilters


def _view_json(view: SavedView) -> dict[str, Any]:
    return {"id": view.id, "name": view.name, "filters": view.filters, "updated_at": view.updated_at.isoformat()}


@router.get("/worklist/views")
def get_views(request: Request, who: ReaderCaller) -> list[dict[str, Any]]:
    """The reader's own saved views of the worklist, by name."""
    with unit_of_work(request, read_only=True) as session:
        return [_view_json(view) for view in views_of(session, _user_id(who))]


@router.post("/worklist/views", status_code=201, response_model=None)
def post_view(request: Request, who: ReaderCaller, body: ViewBody, response: Response) -> dict[str, Any] | JSONResponse:
    """Save the filters under a name: 201 for a new view, 200 when it replaces his view of that name."""
    try:
        with unit_of_work(request) as session:
            view, new = save_view(session, _user_id(who), body.name, body.filters.model_dump(mode="json"))
            response.status_code = 201 if new else 200
            return _view_json(view)
    except Refused as exc:
        return refused(exc)


@router.delete("/worklist/views/{view_id}", status_code=204)
def remove_view(request: Request, who: ReaderCaller, view_id: int) -> Response:
    """Delete one of the reader's views; another's is 404 (he may not know it exists)."""
    with unit_of_work(request) as session:
        delete_view(session, _user_id(who), view_id)
    return Response(status_code=204)


def _user_id(who: Any) -> int:
    if who.user_id is None:
        raise OutOfScope("saved views belong to a user")
    user_id: int = who.user_id
    return user_id
