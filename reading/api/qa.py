"""``/api/qa``: turnaround and SLA figures and the breach list, for QA staff (role ``qa``) and
admins; a consortium's QA staff see their consortium only. ``format=csv`` gives the same as a
spreadsheet (``format=xlsx``: the CSV's cells as a workbook). Every figure is derived from the
change log (``reading/qa``). Workload, AI performance and the monthly PDF: ``qa_reports.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from pacs.index.types import utcnow
from reading.api.deps import QaCaller, unit_of_work
from reading.api.qa_reports import xlsx_response
from reading.errors import Invalid
from reading.qa.service import (
    breach_list,
    breaches_csv,
    figures,
    figures_csv,
    name_lookup,
    parse_day,
    staffing_json,
)

router = APIRouter(prefix="/qa", tags=["quality"])

GroupBy = Annotated[
    str,
    Query(
        description="comma-separated: consortium, site, site_tier, reader, tier, modality, body_part, priority, period"
    ),
]
Day = Annotated[str | None, Query(description="local date of the consortium, e.g. 2026-10-01")]
# Breach columns a spreadsheet keeps as text (the UID above all: it looks like a number).
BREACH_TEXT = ("study_uid", "site", "tier", "priority", "deadline_at", "open", "interval", "cause")
Format = Annotated[str, Query(pattern="^(json|csv|xlsx)$")]


@router.get("/turnaround", response_model=None)
def get_turnaround(
    request: Request,
    who: QaCaller,
    group_by: GroupBy = "site",
    period: Annotated[str, Query(description="day, week or month (with group_by=period)")] = "month",
    start: Annotated[str | None, Query(alias="from", description="first local date, e.g. 2026-10-01")] = None,
    end: Annotated[str | None, Query(alias="to", description="local date after the last, e.g. 2026-11-01")] = None,
    format: Format = "json",
) -> Response:
    """Counts, SLA compliance and p50/p90/p95 minutes of every interval (first image → stable
    → AI → queued → claimed → preliminary → signed → delivered) and end to end, per group."""
    dimensions = [g.strip() for g in group_by.split(",") if g.strip()]
    with unit_of_work(request) as session:
        if not dimensions:
            raise Invalid("group_by names at least one dimension")
        groups = figures(
            session,
            who.consortium_id,
            group_by=dimensions,
            period=period,
            start=parse_day(start, "from"),
            end=parse_day(end, "to"),
            now=utcnow(),
        )
    if format == "csv":
        return Response(figures_csv(groups, dimensions), media_type="text/csv; charset=utf-8")
    if format == "xlsx":  # the CSV's cells, numbers typed (reading/qa/sheets.py)
        return xlsx_response(
            figures_csv(groups, dimensions), title="turnaround", text_columns=dimensions, filename="turnaround.xlsx"
        )
    # Plain JSON already: no generic encoder pass over a province's groups and breaches.
    return JSONResponse({"group_by": dimensions, "period": period, "groups": [g.as_json() for g in groups]})


@router.get("/breaches", response_model=None)
def get_breaches(
    request: Request,
    who: QaCaller,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    format: Format = "json",
) -> Response:
    """Tasks past their deadline (signed late or still open), with the interval that ran long —
    and, when that was the wait in the queue, who was on duty (``staffing``: ``kind`` is
    ``no_reader_on_duty``, ``backlog`` or ``not_credentialed``)."""
    with unit_of_work(request) as session:
        found = breach_list(
            session, who.consortium_id, start=parse_day(start, "from"), end=parse_day(end, "to"), now=utcnow()
        )
        names = name_lookup(session)
        if format == "csv":
            return Response(breaches_csv(found, names), media_type="text/csv; charset=utf-8")
        if format == "xlsx":
            return xlsx_response(
                breaches_csv(found, names), title="breaches", text_columns=BREACH_TEXT, filename="breaches.xlsx"
            )
        return JSONResponse(
            {
                "breaches": [
                    {
                        "task_id": b.task_id,
                        "study_uid": b.study_uid,
                        "site": names("site", b.site_id),
                        "tier": b.tier,
                        "priority": b.priority,
                        "deadline_at": b.deadline_at.isoformat(),
                        "late_minutes": b.late_minutes,
                        "open": b.open,
                        "interval": b.interval,
                        "interval_minutes": b.interval_minutes,
                        "cause": b.cause,
                        "staffing": staffing_json(b.staffing),
                    }
                    for b in found
                ]
            }
        )
