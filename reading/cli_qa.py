"""``yunying qa workload|ai|report``: per-site workload for settlement, AI performance in
practice and the monthly quality report (PDF), from the command line — with no caller scope:
whoever runs the command on the server sees every consortium."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from pacs.cli_support import console, fail
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.types import utcnow
from reading.cli import _run, _services
from reading.errors import Invalid, ReadingError

Month = Annotated[str, typer.Option(help="A local month of the consortium, e.g. 2026-10.")]
Consortium = Annotated[str | None, typer.Option(help="Only this consortium (default: every one).")]


class ExportFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    XLSX = "xlsx"


def qa_workload(
    month: Month,
    consortium: Consortium = None,
    format: Annotated[
        ExportFormat | None,
        typer.Option("--format", help="table, csv or xlsx (default: table; with --output, from its suffix)."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of printing.")] = None,
) -> None:
    """Reads per site, modality and tier signed in a month (the basis of settlement).

    An escalated study is the provincial tier's read; its county task is counted as escalated."""
    from reading.qa.queries import consortium_scope, workload_lines
    from reading.qa.service import month_range
    from reading.qa.sheets import xlsx_from_csv
    from reading.qa.workload import TEXT_COLUMNS, workload_csv

    chosen = format or (
        ExportFormat.XLSX if output and output.suffix == ".xlsx" else ExportFormat.CSV if output else ExportFormat.TABLE
    )
    if chosen is ExportFormat.XLSX and output is None:
        raise fail("qa workload: --format xlsx writes a workbook: give --output FILE.xlsx")

    def work(session: Session) -> str:
        start, end = month_range(month)
        lines = workload_lines(session, consortium_scope(session, None, consortium), start, end)
        if chosen is ExportFormat.TABLE:
            table = Table("consortium", "site", "modality", "tier", "reads", "stat", "urgent", "routine", "escalated")
            for line in lines:
                table.add_row(
                    line.consortium,
                    line.site,
                    line.modality,
                    line.tier,
                    *(str(n) for n in (line.signed, line.stat, line.urgent, line.routine, line.escalated)),
                )
            console.print(table)
            return f"{sum(line.signed for line in lines)} read(s) signed in {month}"
        text = workload_csv(lines)
        if output is None:
            return text
        if chosen is ExportFormat.XLSX:
            output.write_bytes(xlsx_from_csv(text, title=f"workload {month}", text_columns=TEXT_COLUMNS))
        else:
            output.write_text(text, encoding="utf-8")
        return f"{len(lines)} line(s) written to {output}\n"

    _run("qa workload", work, plain=chosen is ExportFormat.CSV or output is not None)


def qa_ai(
    month: Annotated[str | None, typer.Option(help="A whole local month, e.g. 2026-10.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First local date, e.g. 2026-10-01.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="The local date after the last.")] = None,
    consortium: Consortium = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """AI performance per model version and site, in minutes and shares.

    Flagged rate, readers' agreement (— without feedback) and the queue wait of tasks whose
    priority the AI raised, against the others."""
    from reading.qa.queries import ai_figures, consortium_scope
    from reading.qa.service import month_range, parse_day

    def work(session: Session) -> str:
        if month and (start or end):
            raise Invalid("give --month, or --from and --to, not both")
        first, after = month_range(month) if month else (parse_day(start, "--from"), parse_day(end, "--to"))
        lines = ai_figures(session, consortium_scope(session, None, consortium), first, after)
        if json_out:
            return json.dumps([line.as_json() for line in lines], ensure_ascii=False, indent=1) + "\n"
        table = Table(
            "model", "version", "site", "screened", "flagged", "agreement", "AI-prioritised", "wait/peers/saved p50"
        )
        for line in lines:
            lifted = line.as_json()["prioritised"]
            waits = "/".join(
                "—" if lifted[k] is None else f"{lifted[k]:g}" for k in ("wait_p50", "peer_wait_p50", "time_saved_p50")
            )
            table.add_row(
                line.model,
                line.version,
                line.site,
                str(line.screened),
                "—" if line.flagged_rate is None else f"{line.flagged_rate:.0%}",
                "—" if line.agreement is None else f"{line.agreement:.0%} ({line.agreed}/{line.opinions})",
                str(line.prioritised),
                waits,
            )
        console.print(table)
        return f"{len(lines)} model/site line(s); minutes; definitions in docs/qa.md"

    _run("qa ai", work, plain=json_out)


def qa_report(
    month: Month,
    output: Annotated[Path, typer.Option(help="The PDF to write, e.g. report.pdf.")],
    consortium: Annotated[str | None, typer.Option(help="The consortium (needed when there are several).")] = None,
) -> None:
    """Write the monthly consortium quality report (PDF).

    Volume, turnaround against the SLA, breach causes, escalation rate, AI performance and a
    per-site table."""
    from reading.qa.monthly import STEPS, month_scope
    from reading.qa.report import build_report_pdf, prepare_report
    from reading.reports.outputs.errors import ReportOutputError

    services = _services()
    began = time.monotonic()
    try:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("opening the index", total=len(STEPS))

            def step(name: str) -> None:
                progress.update(task, description=name, completed=STEPS.index(name))

            with transaction(services.sessions) as session:
                scope = month_scope(session, None, consortium, month, utcnow())
                prepared = prepare_report(session, scope, progress=step)
            pdf = build_report_pdf(prepared, progress=step)
            progress.update(task, completed=len(STEPS))
        output.write_bytes(pdf)
    except ReadingError as exc:
        raise fail(f"qa report: {exc}") from None
    except ReportOutputError as exc:
        raise fail(f"qa report: {exc}") from None
    except IndexUnavailable as exc:
        raise fail(f"index unavailable: {exc}\nCheck YUNYING_DATABASE_URL.") from None
    finally:
        services.close()
    console.print(
        f"Quality report of {scope.consortium} for {month} written to {output} "
        f"({len(pdf) // 1024} KiB, {prepared.figures.tasks} task(s), {time.monotonic() - began:.1f} s)"
    )


def register(qa_app: typer.Typer) -> None:
    qa_app.command("workload")(qa_workload)
    qa_app.command("ai")(qa_ai)
    qa_app.command("report")(qa_report)
