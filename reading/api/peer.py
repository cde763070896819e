"""Peer review (RADPEER) over HTTP. ``/api/peer-reviews``: a reader's own assignments, blinded
(nothing names the reader reviewed), and his score. ``/api/qa/peer``: sampling, every review
with both readers named, the discrepancy rates, the QA review queue of 3b scores — for QA staff
and admins, a consortium's within their consortium only; ``format=csv|xlsx`` for a spreadsheet."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import client_address, services_of
from pacs.identity.users import Principal
from pacs.index.models import Role
from pacs.index.types import utcnow
from reading.api.deps import QaCaller, ReaderCaller, reading_settings, require_role, unit_of_work
from reading.errors import OutOfScope
from reading.models import Reader
from reading.qa import peer
from reading.qa.peer_export import as_csv, as_xlsx, rates_table, reviews_table
from reading.qa.service import name_lookup, parse_day
from reading.worklist.readers import reader_of_user

router = APIRouter(tags=["peer review"])

XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Format = Annotated[str, Query(pattern="^(json|csv|xlsx)$")]
Day = Annotated[str | None, Query(description="local date of the consortium, e.g. 2026-10-01")]
ConsortiumId = Annotated[
    int | None, Query(description="a consortium id (installation admins); QA staff see their own only")
]


def _reviewer(session: Session, who: Principal) -> Reader:
    require_role(who, Role.READER)
    return reader_of_user(session, who.user_id)


def _scope(who: Principal, consortium: int | None) -> int | None:
    """The consortium a QA request covers (None: all, for an installation admin)."""
    require_role(who, Role.QA, Role.ADMIN)
    if consortium is None:
        return who.consortium_id
    if who.consortium_id is not None and consortium != who.consortium_id:
        raise OutOfScope(f"you see consortium {who.consortium_id} only")
    return consortium


def _table(name: str, table: Any, format: str) -> Response:
    if format == "xlsx":
        return Response(
            as_xlsx({name: table}),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return Response(as_csv(table), media_type="text/csv; charset=utf-8")


# ---------------------------------------------------------------- the reviewer


class ScoreBody(BaseModel):
    score: str = Field(min_length=1, max_length=8, description="1, 2a, 2b, 3a or 3b")
    comment: str | None = Field(default=None, max_length=5000)


@router.get("/peer-reviews")
def list_assignments(
    request: Request,
    who: ReaderCaller,
    state: Annotated[list[str] | None, Query(description="assigned (default) or scored")] = None,
) -> dict[str, Any]:
    """My peer-review assignments, blinded, oldest first. They are not reading tasks: they
    are not in the worklist and do not count against my SLA."""
    with unit_of_work(request, read_only=True) as session:
        reviews = peer.assignments_of(session, _reviewer(session, who), states=state or ["assigned"])
        views = [peer.reviewer_view(session, r) for r in reviews]
    services_of(request).audit.record(
        who,
        "peer-reviews",
        source=client_address(request),
        answered=len(views),
        studies=[v["study_uid"] for v in views][:100],
    )
    return {"reviews": views}


@router.get("/peer-reviews/{review_id}")
def get_assignment(request: Request, who: ReaderCaller, review_id: int) -> dict[str, Any]:
    """One of my assignments (403 when it is another reader's), blinded."""
    with unit_of_work(request, read_only=True) as session:
        review = peer.assignment(session, _reviewer(session, who), review_id)
        view = peer.reviewer_view(session, review)
        services_of(request).audit.record_once(
            who,
            "peer-review",
            study_uid=review.study_uid,
            patient_id=(view["study"] or {}).get("patient_id"),
            site_id=review.site_id,
            source=client_address(request),
        )
        return view


@router.post("/peer-reviews/{review_id}/score")
def post_score(request: Request, who: ReaderCaller, review_id: int, body: ScoreBody) -> dict[str, Any]:
    """Score one of my assignments: 1, 2a, 2b, 3a or 3b; a discrepancy (2a–3b) needs a
    comment. Scoring twice is 409; a 3b also opens a case for QA."""
    with unit_of_work(request) as session:
        review = peer.score_review(
            session, _reviewer(session, who), review_id, score=body.score, comment=body.comment, now=utcnow()
        )
        return peer.reviewer_view(session, review)


# ---------------------------------------------------------------- QA


class SampleBody(BaseModel):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="the local month of signing, e.g. 2026-10")
    consortium: int | None = None


class CloseBody(BaseModel):
    outcome: str = Field(description="confirmed or not_confirmed")
    comment: str = Field(max_length=5000, description="what was done (feedback, addendum, recall …)")


@router.post("/qa/peer/sample")
def post_sample(request: Request, who: QaCaller, body: SampleBody) -> dict[str, Any]:
    """Draw each reader's share (``YUNYING_PEER_REVIEW_SHARE``) of the month's signed reports
    not drawn yet, and assign them; earlier samples without a reviewer are tried again."""
    with unit_of_work(request) as session:
        run = peer.sample_month(
            session,
            month=body.month,
            share=reading_settings(request).peer_review_share,
            now=utcnow(),
            consortium_id=_scope(who, body.consortium),
            actor=who.username,
        )
    return {**asdict(run), "summary": run.describe()}


@router.get("/qa/peer/reviews", response_model=None)
def list_reviews(
    request: Request,
    who: QaCaller,
    state: Annotated[list[str] | None, Query(description="unassigned, assigned, scored")] = None,
    start: Annotated[str | None, Query(alias="from", description="first local date of signing")] = None,
    end: Annotated[str | None, Query(alias="to", description="local date after the last")] = None,
    consortium: ConsortiumId = None,
    format: Format = "json",
) -> dict[str, Any] | Response:
    """Every sampled review with both readers named, its score and QA outcome."""
    with unit_of_work(request, read_only=True) as session:
        reviews = peer.reviews_in_scope(
            session,
            _scope(who, consortium),
            states=state or (),
            start=parse_day(start, "from"),
            end=parse_day(end, "to"),
        )
        names = name_lookup(session)
        views = [peer.qa_view(r, names) for r in reviews]
    if format != "json":
        return _table("peer-reviews", reviews_table(views), format)
    return {"reviews": views}


@router.get("/qa/peer/rates", response_model=None)
def get_rates(
    request: Request,
    who: QaCaller,
    group_by: Annotated[str, Query(description="comma-separated: consortium, site, reader, modality, period")] = (
        "reader"
    ),
    start: Annotated[str | None, Query(alias="from", description="first local date of signing")] = None,
    end: Annotated[str | None, Query(alias="to", description="local date after the last")] = None,
    consortium: ConsortiumId = None,
    format: Format = "json",
) -> dict[str, Any] | Response:
    """Discrepancy (2a–3b) and significant discrepancy (2b, 3b) rates per group, each with its
    95 % Wilson score interval, from the change log."""
    dimensions = [g.strip() for g in group_by.split(",") if g.strip()]
    with unit_of_work(request, read_only=True) as session:
        groups = peer.rate_groups(
            session,
            _scope(who, consortium),
            group_by=dimensions,
            start=parse_day(start, "from"),
            end=parse_day(end, "to"),
        )
    if format != "json":
        return _table("peer-review-rates", rates_table(groups, dimensions), format)
    return {"group_by": dimensions, "groups": [g.as_json() for g in groups]}


@router.get("/qa/peer/queue")
def get_queue(
    request: Request,
    who: QaCaller,
    state: Annotated[str, Query(pattern="^(open|closed|any)$")] = "open",
    consortium: ConsortiumId = None,
) -> dict[str, Any]:
    """The QA review queue: reviews scored 3b, open ones by default."""
    with unit_of_work(request, read_only=True) as session:
        reviews = peer.reviews_in_scope(session, _scope(who, consortium), queue=state)
        names = name_lookup(session)
        return {"cases": [peer.qa_view(r, names) for r in reviews]}


@router.post("/qa/peer/queue/{review_id}/close")
def post_close(request: Request, who: QaCaller, review_id: int, body: CloseBody) -> dict[str, Any]:
    """Close a case of the queue with an outcome and what was done."""
    with unit_of_work(request) as session:
        review = peer.close_case(
            session,
            _scope(who, None),
            review_id,
            outcome=body.outcome,
            comment=body.comment,
            by=who.username,
            now=utcnow(),
        )
        return peer.qa_view(review, name_lookup(session))
