"""``/api/qa/workload``, ``/api/qa/ai`` and ``/api/qa/report``: per-site workload for settlement
(JSON, CSV, XLSX), AI performance in practice, and the monthly quality report as PDF — for QA
staff (role ``qa``) and admins, a consortium's QA staff for their own consortium only. The
figures are ``reading.qa``'s; this module only maps them to HTTP."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from pacs.index.types import utcnow
from reading.api.deps import QaCaller, unit_of_work
from reading.errors import Invalid
from reading.qa.monthly import month_scope
from reading.qa.queries import ai_figures, consortium_scope, workload_lines
from reading.qa.report import build_report_pdf, prepare_report
from reading.qa.service import month_range, parse_day
from reading.qa.sheets import XLSX_MEDIA_TYPE, xlsx_from_csv
from reading.qa.workload import TEXT_COLUMNS, workload_csv
from reading.reports.outputs.errors import ReportOutputError

router = APIRouter(prefix="/qa", tags=["quality"])

Month = Annotated[str, Query(description="a local month of the consortium, e.g. 2026-10")]
ConsortiumName = Annotated[
    str | None, Query(description="a consortium by name (default: your own; an admin of none: every one)")
]
Day = Annotated[str | None, Query(description="a local date of the consortium, e.g. 2026-10-01")]


def xlsx_response(csv_text: str, *, title: str, text_columns: Collection[str], filename: str) -> Response:
    """The CSV's cells as an XLSX download (``reading.qa.sheets``)."""
    return Response(
        xlsx_from_csv(csv_text, title=title, text_columns=text_columns),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/workload", response_model=None)
def get_workload(
    request: Request,
    who: QaCaller,
    month: Month,
    consortium: ConsortiumName = None,
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
) -> dict[str, Any] | Response:
    """Reads per site, modality and reading tier closed (signed) in a local month — the basis of
    settlement; an escalated study is the provincial tier's read, its county task counted apart."""
    with unit_of_work(request) as session:
        start, end = month_range(month)
        lines = workload_lines(session, consortium_scope(session, who.consortium_id, consortium), start, end)
    if format == "csv":
        return Response(workload_csv(lines), media_type="text/csv; charset=utf-8")
    if format == "xlsx":
        return xlsx_response(
            workload_csv(lines), title=f"workload {month}", text_columns=TEXT_COLUMNS, filename=f"workload-{month}.xlsx"
        )
    return {
        "month": month,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "lines": [line.as_json() for line in lines],
        "signed": sum(line.signed for line in lines),
        "escalated": sum(line.escalated for line in lines),
    }


@router.get("/ai")
def get_ai(
    request: Request,
    who: QaCaller,
    start: Day = None,
    end: Annotated[str | None, Query(description="the local date after the last, e.g. 2026-11-01")] = None,
    start_alias: Annotated[str | None, Query(alias="from", description="the same as start")] = None,
    end_alias: Annotated[str | None, Query(alias="to", description="the same as end")] = None,
    month: Annotated[str | None, Query(description="a whole local month instead of start/end")] = None,
    consortium: ConsortiumName = None,
) -> dict[str, Any]:
    """Per AI model version and site: flagged rate, readers' agreement (null without feedback),
    and how long the tasks whose priority the AI raised waited in the queue against the others."""
    with unit_of_work(request) as session:
        first, after = _range(start or start_alias, end or end_alias, month)
        lines = ai_figures(session, consortium_scope(session, who.consortium_id, consortium), first, after)
    return {
        "from": first.isoformat() if first else None,
        "to": after.isoformat() if after else None,
        "models": [line.as_json() for line in lines],
    }


def _range(start: str | None, end: str | None, month: str | None) -> tuple[date | None, date | None]:
    if month:
        if start or end:
            raise Invalid("give month, or start and end (from and to), not both")
        return month_range(month)
    return parse_day(start, "start"), parse_day(end, "end")


@router.get("/report", response_class=Response)
def get_report(request: Request, who: QaCaller, month: Month, consortium: ConsortiumName = None) -> Response:
    """The monthly consortium quality report as PDF: volume, turnaround against the SLA, breach
    causes, escalation rate, AI performance, per site. An admin of every consortium names one."""
    with unit_of_work(request) as session:
        scope = month_scope(session, who.consortium_id, consortium, month, utcnow())
        prepared = prepare_report(session, scope)
    try:
        pdf = build_report_pdf(prepared)
    except ReportOutputError as exc:
        raise HTTPException(500, str(exc)) from None
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="quality-report-{month}.pdf"'},
    )
