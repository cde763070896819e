"""``/api/tasks/{id}/priors``: the earlier studies of a task's patient from any site of its
consortium (pacs/patients.py: the same ID card, or probably the same person by name, birth date
and sex), and opening one of them beside the task's study.

A prior at a site the reader does not read for is opened as a break-glass of that one study
(pacs/identity/break_glass.py) with the reason "prior for task N", for a few hours: QA sees it in
``/api/break-glass`` and the access audit like any other opening; the reader's sites stay as
they are.

A prior matched only probably (name, birth date and sex) can be confirmed or rejected by a reader
who may open the task (``POST .../identity``, pacs/patient_links.py): rejected, it is listed for
nobody in the consortium any more; confirmed, it is listed with basis ``confirmed`` and who
confirmed it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import client_address, services_of
from pacs.identity.break_glass import open_study
from pacs.identity.users import Principal
from pacs.index.models import Patient, Role, Study
from pacs.index.types import utcnow
from pacs.patient_links import REASON_MAX, LinkDecision, decide_link
from pacs.patients import MatchBasis, PriorStudy, own_patient, prior_studies
from reading.api.deps import ReaderCaller, check_may_read, reading_settings, refused, require_role, unit_of_work
from reading.errors import NotFound, Refused
from reading.models import ReadingTask
from reading.worklist.tasks import get_task

router = APIRouter(tags=["priors"])

StudyUid = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]


def _readable_task(session: Session, who: Principal, task_id: int) -> ReadingTask:
    """The task, when ``who`` may open it (the role is checked before the task is looked up)."""
    require_role(who, Role.READER)
    task = get_task(session, task_id)
    check_may_read(session, who, task)
    return task


def _prior_json(prior: PriorStudy, who: Principal) -> dict[str, Any]:
    return {
        "study_uid": prior.study_uid,
        "study_date": prior.study_date,
        "study_time": prior.study_time,
        "site_id": prior.site_id,
        "site": prior.site_name,
        "modalities": prior.modalities,
        "description": prior.description,
        "instances": prior.num_instances,
        "basis": prior.basis.value,
        "decided_by": prior.decided_by,  # who confirmed it (basis ``confirmed``)
        # Already within the reader's sites (or opened): no break-glass needed to show it.
        "open": who.scope.allows(prior.site_id, prior.study_uid),
    }


@router.get("/tasks/{task_id}/priors")
def get_priors(request: Request, who: ReaderCaller, task_id: int) -> dict[str, Any]:
    """The other studies of the task's patient at the consortium's sites, newest first, each with
    its site and why it is thought to be the same patient (``basis``: ``same_id``,
    ``national_id`` or ``probable``). 403 when the reader may not open the task."""
    with unit_of_work(request, read_only=True) as session:
        task = _readable_task(session, who, task_id)
        priors = prior_studies(session, task.study_uid)
        patient_id = session.scalar(select(Study.patient_id).where(Study.study_uid == task.study_uid))
    services_of(request).audit.record(
        who,
        "list-priors",
        study_uid=task.study_uid,
        patient_id=patient_id,
        site_id=task.site_id,
        source=client_address(request),
        task_id=task_id,
        priors=[p.study_uid for p in priors][:100],
    )
    return {"task_id": task_id, "priors": [_prior_json(p, who) for p in priors]}


@router.post("/tasks/{task_id}/priors/{study_uid}/open")
def post_open_prior(request: Request, who: ReaderCaller, task_id: int, study_uid: StudyUid) -> dict[str, Any]:
    """Let the reader see one prior of the task's patient (WADO, QIDO, metadata, frames): a
    break-glass of that study for ``prior_access_hours``, reason "prior for task N", unless it is
    already within his sites. 404 when the study is not a prior of this task's patient."""
    hours = reading_settings(request).prior_access_hours
    with unit_of_work(request) as session:
        task = _readable_task(session, who, task_id)
        prior = next((p for p in prior_studies(session, task.study_uid) if p.study_uid == study_uid), None)
        if prior is None:
            raise NotFound(f"study {study_uid} is not a prior study of task {task_id}'s patient")
        if who.scope.allows(prior.site_id, prior.study_uid):
            return {"study_uid": study_uid, "granted": False, "expires_at": None, "basis": prior.basis.value}
        assert who.user_id is not None  # a reader is a user
        opened = open_study(
            session,
            user_id=who.user_id,
            username=who.username,
            study_uid=study_uid,
            reason=f"prior for task {task_id}",
            now=utcnow(),
            hours=hours,
        )
        answer = {
            "study_uid": study_uid,
            "granted": True,
            "expires_at": opened.expires_at.isoformat(),
            "basis": prior.basis.value,
        }
    services_of(request).audit.record(
        who,
        "break-glass",
        study_uid=study_uid,
        patient_id=prior.patient_id,
        site_id=prior.site_id,
        source=client_address(request),
        reason=f"prior for task {task_id}",
        task_id=task_id,
        basis=prior.basis.value,
    )
    return answer


class IdentityDecision(BaseModel):
    """A reader's word on a probable prior: ``confirmed`` (the same person) or ``rejected``."""

    decision: str
    reason: str | None = None


_DECIDABLE = frozenset({MatchBasis.PROBABLE, MatchBasis.CONFIRMED})


def _checked(body: IdentityDecision) -> tuple[LinkDecision, str | None]:
    try:
        decision = LinkDecision(body.decision)
    except ValueError:
        raise Refused(
            f"decision must be 'confirmed' or 'rejected', not {body.decision!r}",
            code="identity_decision_invalid",
            field="decision",
        ) from None
    reason = (body.reason or "").strip() or None
    if reason is not None and len(reason) > REASON_MAX:
        raise Refused(
            f"the reason is longer than {REASON_MAX} characters",
            code="identity_reason_long",
            field="reason",
            n=REASON_MAX,
        )
    return decision, reason


@router.post("/tasks/{task_id}/priors/{study_uid}/identity", response_model=None)
def post_prior_identity(
    request: Request, who: ReaderCaller, task_id: int, study_uid: StudyUid, body: IdentityDecision
) -> dict[str, Any] | JSONResponse:
    """The reader says whether a probable prior's patient is the task's patient: ``confirmed`` or
    ``rejected`` (a reason optional). It replaces an earlier decision on the same pair of patient
    rows, by anyone. 403 when he may not open the task; 404 when the study is no listed prior of
    the task; 409 ``prior_not_probable`` when it matches by ID (no one's word needed); 422 for a
    bad decision or reason."""
    try:
        with unit_of_work(request) as session:
            task = _readable_task(session, who, task_id)
            decision, reason = _checked(body)
            prior = next((p for p in prior_studies(session, task.study_uid) if p.study_uid == study_uid), None)
            if prior is None:
                raise NotFound(f"study {study_uid} is not a prior study of task {task_id}'s patient")
            if prior.basis not in _DECIDABLE:
                return JSONResponse(
                    {
                        "detail": f"study {study_uid} matches by {prior.basis.value}, not probably: nothing to decide",
                        "code": "prior_not_probable",
                        "field": None,
                        "params": {"basis": prior.basis.value},
                    },
                    status_code=409,
                )
            own = own_patient(session, task.study_uid)
            other = session.get(Patient, prior.patient_pk)
            assert own is not None and other is not None
            decided = decide_link(
                session,
                own,
                other,
                decision,
                user_id=who.user_id,
                username=who.username,
                reason=reason,
                now=utcnow(),
                study_uid=study_uid,
                task_id=task_id,
            )
    except Refused as exc:
        return refused(exc)
    services_of(request).audit.record(
        who,
        "patient-identity",
        study_uid=study_uid,
        patient_id=prior.patient_id,
        site_id=prior.site_id,
        source=client_address(request),
        task_id=task_id,
        decision=decision.value,
        previous=decided.previous.value if decided.previous else None,
        reason=reason,
    )
    return {
        "study_uid": study_uid,
        "decision": decision.value,
        "previous": decided.previous.value if decided.previous else None,
        "previous_by": decided.previous_by,
    }
