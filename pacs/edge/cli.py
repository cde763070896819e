"""``yunying edge``: the clinic's store-and-forward box — run it, see where each study stands,
list and print the reports that came back, retry what the centre refused, prune by hand."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import timedelta
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from pacs.cli_support import console, err, fail
from pacs.edge import queue
from pacs.edge.reports import kept_reports
from pacs.edge.settings import EdgeSettings
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.types import utcnow
from pacs.logs import configure_logging
from pacs.service import Services

edge_app = typer.Typer(
    help="The clinic edge: receives from the clinic's modalities, forwards to the centre over a weak link, "
    "brings reports back. Settings: YUNYING_EDGE_* (docs/edge.md).",
    no_args_is_help=True,
)


def load_edge_settings() -> EdgeSettings:
    try:
        return EdgeSettings()
    except ValidationError as exc:
        err.print(f"[red]Configuration error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@edge_app.command("serve")
def serve() -> None:
    """Run the edge until Ctrl-C or SIGTERM: DICOM receiver for the clinic, forwarder, report puller, status page."""
    from pacs.edge.service import Edge

    settings = load_edge_settings()
    configure_logging(settings.receiver_settings())
    if not settings.modalities:
        err.print("[yellow]No modality may send yet: set YUNYING_EDGE_MODALITIES='[\"CT1@10.2.0.15\"]'.[/yellow]")
    try:
        edge = Edge(settings)
        edge.start()
    except (OSError, RuntimeError) as exc:
        raise fail(f"cannot start the edge: {exc}", 2) from None
    page = f", status page http://{settings.status_host}:{edge.page.port}/" if edge.page else ""
    console.print(
        f"Yunying edge {settings.ae_title} listening on DICOM port {edge.dicom_port}{page} — Ctrl-C stops it."
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        edge.stop()


def _progress(limit: int) -> list[queue.StudyProgress]:
    from pacs.index.db import make_engine, make_sessionmaker

    settings = load_edge_settings()
    url = settings.receiver_settings().resolved_database_url
    if not (settings.home / "yunying.db").exists():
        raise fail(
            f"no edge index under {settings.home.resolve()}: start `yunying edge serve` first (YUNYING_EDGE_HOME)"
        )
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine), read_only=True) as session:
            return queue.study_progress(session, limit=limit)
    except IndexUnavailable as exc:
        raise fail(f"cannot read the edge index: {exc}") from None
    finally:
        engine.dispose()


@edge_app.command("status")
def status(
    limit: Annotated[int, typer.Option(help="Most recent N studies.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Where each study stands: queued / sending n of m / acknowledged / failed with the reason."""
    rows = _progress(limit)
    if as_json:
        for p in rows:
            print(
                json.dumps(
                    {
                        "study_uid": p.study_uid,
                        "state": p.state,
                        "acknowledged": p.acknowledged,
                        "total": p.total,
                        "queued": p.queued,
                        "sending": p.sending,
                        "failed": p.failed,
                        "manifest": p.manifest,
                        "errors": p.errors,
                        "next_attempt_at": p.next_attempt_at.isoformat() if p.next_attempt_at else None,
                        "patient_id": p.patient_id,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("study UID", "patient", "modality", "state", "next try")
    for p in rows:
        style = {"failed": "red", "acknowledged": "green"}.get(p.state, "")
        table.add_row(
            p.study_uid,
            f"{p.patient_name or ''} ({p.patient_id or ''})",
            p.modalities,
            f"[{style}]{p.describe()}[/{style}]" if style else p.describe(),
            p.next_attempt_at.strftime("%H:%M:%S") if p.next_attempt_at else "—",
        )
    console.print(table)
    if not rows:
        console.print("No study received yet.")


@edge_app.command("reports")
def reports(
    print_id: Annotated[int | None, typer.Option("--print", help="Send this report's PDF to the printer (lp).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List the signed reports that came back from the centre, or print one."""
    settings = load_edge_settings()
    kept = kept_reports(settings.reports_path)
    if print_id is not None:
        found = next((r for r in kept if r.report_id == print_id), None)
        if found is None:
            raise fail(f"no report {print_id} here: see `yunying edge reports`")
        try:
            subprocess.run(["lp", str(found.pdf)], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise fail(f"cannot print ({exc}); open {found.pdf} instead") from None
        console.print(f"Report {print_id} sent to the printer.")
        return
    if as_json:
        for r in kept:
            print(
                json.dumps(
                    {
                        "report_id": r.report_id,
                        "study_uid": r.study_uid,
                        "signed_at": r.signed_at,
                        "impression": r.impression,
                        "critical": r.critical,
                        "pdf": str(r.pdf),
                        "sr": str(r.sr) if r.sr.exists() else None,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("report", "signed", "study UID", "impression", "PDF")
    for r in kept:
        table.add_row(
            str(r.report_id), r.signed_at or "", r.study_uid, ("⚠ " if r.critical else "") + r.impression, str(r.pdf)
        )
    console.print(table)
    if not kept:
        console.print("No report has come back yet.")


def _edge_sessions() -> Services:
    from pacs.edge.service import open_edge_services

    return open_edge_services(load_edge_settings())


@edge_app.command("retry")
def retry(study: Annotated[str | None, typer.Option(help="Only this study UID.")] = None) -> None:
    """Queue again what failed (after the cause was fixed at the centre: a token, an AE, a SOP class)."""
    services = _edge_sessions()
    try:
        with transaction(services.sessions) as session:
            count = queue.retry_failed(session, now=utcnow(), study_uid=study)
    finally:
        services.close()
    console.print(f"{count} job(s) queued again; the running edge takes them within a second.")


@edge_app.command("prune")
def prune_now(
    days: Annotated[float | None, typer.Option(help="Retention in days (default YUNYING_EDGE_RETENTION_DAYS).")] = None,
) -> None:
    """Delete now the studies the centre acknowledged longer ago than the retention period."""
    from pacs.edge.prune import prune

    settings = load_edge_settings()
    services = _edge_sessions()
    try:
        pruned = prune(
            services.sessions, services.store, timedelta(days=settings.retention_days if days is None else days)
        )
    finally:
        services.close()
    console.print(f"{len(pruned)} acknowledged stud(y/ies) deleted locally.")


def register(app: typer.Typer) -> None:
    app.add_typer(edge_app, name="edge")
