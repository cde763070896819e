"""``/api/tasks/{id}/ai-findings`` and ``/api/ai-findings/{id}/feedback``: the AI findings of
the study a reader has open (with where to look, so the viewer jumps to the slice) and his
agree/disagree with each — the opinions QA's AI agreement figures count."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from ai_models.feedback import record_feedback
from ai_models.records import AiFeedback, AiFinding
from reading.api.deps import ReaderCaller, check_may_read, unit_of_work
from reading.errors import NotFound
from reading.models import ReadingTask
from reading.worklist.tasks import get_task

router = APIRouter(tags=["ai"])


class FeedbackBody(BaseModel):
    agree: bool
    comment: str | None = Field(default=None, max_length=2000)


def _finding_json(finding: AiFinding, opinion: AiFeedback | None) -> dict[str, Any]:
    return {
        "id": finding.id,
        "model": finding.model,
        "version": finding.version,
        "label": finding.label,
        "probability": finding.probability,
        "positive": finding.positive,
        "explanation": finding.explanation,
        "location": finding.location,
        "suggested_triage": finding.suggested_triage,
        "agree": opinion.agree if opinion else None,
    }


@router.get("/tasks/{task_id}/ai-findings")
def get_findings(request: Request, who: ReaderCaller, task_id: int) -> list[dict[str, Any]]:
    """The AI findings of the task's study, positives first, each with the caller's opinion."""
    with unit_of_work(request, read_only=True) as session:
        task = get_task(session, task_id)
        check_may_read(session, who, task)
        findings = session.scalars(
            select(AiFinding)
            .where(AiFinding.study_uid == task.study_uid)
            .order_by(AiFinding.positive.desc(), AiFinding.probability.desc(), AiFinding.id)
        ).all()
        opinions = {
            o.finding_id: o
            for o in session.scalars(
                select(AiFeedback).where(
                    AiFeedback.user_id == who.user_id, AiFeedback.finding_id.in_([f.id for f in findings])
                )
            )
        }
        return [_finding_json(f, opinions.get(f.id)) for f in findings]


@router.post("/ai-findings/{finding_id}/feedback")
def post_feedback(request: Request, who: ReaderCaller, finding_id: int, body: FeedbackBody) -> dict[str, Any]:
    """Agree or disagree with a finding of a study the caller may read (a second opinion replaces
    the first)."""
    with unit_of_work(request) as session:
        finding = session.get(AiFinding, finding_id)
        if finding is None:
            raise NotFound(f"no AI finding {finding_id}")
        task = session.scalar(
            select(ReadingTask).where(ReadingTask.study_uid == finding.study_uid).order_by(ReadingTask.id.desc())
        )
        if task is None:
            raise NotFound(f"no AI finding {finding_id}")
        check_may_read(session, who, task)
        assert who.user_id is not None  # a reader is a user
        opinion = record_feedback(session, finding_id, who.user_id, agree=body.agree, comment=body.comment)
        return _finding_json(finding, opinion)
