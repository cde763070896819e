"""``yunying audit``: verify, seal, search, export and prune the access audit (pacs/audit_chain.py).

These commands need only the index, not the object store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit import record_access
from pacs.audit_chain import AuditKey, Search, describe, export_lines, prune, seal_all, search, verify
from pacs.cli_support import console, err, fail, load_settings
from pacs.identity.users import Principal, Scope
from pacs.index.db import IndexUnavailable, login, make_engine, make_sessionmaker, transaction
from pacs.index.models import AccessRecord
from pacs.index.types import utcnow
from pacs.settings import Settings

audit_app = typer.Typer(
    help="The access audit: who saw which patient, and every administrative change (hash-chained).",
    no_args_is_help=True,
)


@contextmanager
def _index() -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    settings = load_settings()
    engine = make_engine(settings.resolved_database_url, connect_timeout_s=settings.database_connect_timeout_s)
    try:
        yield settings, make_sessionmaker(engine)
    except IndexUnavailable as exc:
        raise fail(f"index unavailable: {exc} (check YUNYING_DATABASE_URL)") from None
    finally:
        engine.dispose()


def _day(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        raise fail(f"{what} must be a date like 2026-10-01, not {value!r}", 2) from None


def _query(
    patient: str | None, study: str | None, user: str | None, action: str | None, since: str | None, until: str | None
) -> Search:
    end = _day(until, "--until")
    return Search(
        patient_id=patient,
        study_uid=study,
        username=user,
        action=action,
        start=_day(since, "--since"),
        end=end + timedelta(days=1) if end else None,  # --until is inclusive
    )


def _audit_own_search(sessions: sessionmaker[Session], action: str, query: Search, answered: int) -> None:
    """Searching the audit reveals whom a patient was seen by: it is audited too, as the
    operator running the command (``cli:<login>``, like the command line's administrative changes)."""
    operator = Principal(
        user_id=None, username=f"cli:{login()}", role="operator", is_service=False, scope=Scope(None), token_id=None
    )
    record_access(
        sessions,
        operator,
        action,
        study_uid=query.study_uid,
        patient_id=query.patient_id,
        source="local",
        user=query.username,
        answered=answered,
    )


Patient = Annotated[str | None, typer.Option("--patient", help="A patient ID (as the site issued it).")]
Study = Annotated[str | None, typer.Option("--study", help="A Study Instance UID.")]
User = Annotated[str | None, typer.Option("--user", help="A username (cli:LOGIN for command-line changes).")]
Action = Annotated[str | None, typer.Option(help="E.g. retrieve, metadata, open-task, site.created.")]
Since = Annotated[str | None, typer.Option(help="From this day (UTC), e.g. 2026-10-01.")]
Until = Annotated[str | None, typer.Option(help="Up to and including this day (UTC).")]


@audit_app.command("search")
def audit_search(
    patient: Patient = None,
    study: Study = None,
    user: User = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(help="Most recent N.", min=1, max=10_000)] = 100,
) -> None:
    """Who did what to which patient or study — e.g. `yunying audit search --patient P0001`."""
    query = _query(patient, study, user, action, since, until)
    with _index() as (_, sessions):
        with transaction(sessions, read_only=True) as session:
            found = search(session, query, limit=limit)
            session.expunge_all()
        _audit_own_search(sessions, "audit.search", query, len(found))
    table = Table("when (UTC)", "user", "role", "action", "patient", "study", "from", "outcome", "sealed")
    for record in found:
        table.add_row(
            record.at.strftime("%Y-%m-%d %H:%M:%S"),
            record.username,
            record.role,
            record.action,
            record.patient_id or "—",
            record.study_uid or "—",
            record.source or "—",
            record.outcome,
            str(record.chain_seq) if record.chain_seq else "not yet",
        )
    console.print(table)
    console.print(f"{len(found)} record(s), newest first")


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option(help="Write JSON lines here (default: standard output).")] = None,
    patient: Patient = None,
    study: Study = None,
    user: User = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Export matching records as JSON lines, oldest first, with their chain place and digest."""
    query = _query(patient, study, user, action, since, until)
    written = 0
    with _index() as (_, sessions):
        with transaction(sessions, read_only=True) as session:
            out = output.open("w", encoding="utf-8") if output else sys.stdout
            try:
                for line in export_lines(session, query):
                    out.write(line + "\n")
                    written += 1
            finally:
                if output:
                    out.close()
        _audit_own_search(sessions, "audit.export", query, written)
    if output:
        console.print(f"{written} record(s) written to {output}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain: exit 1 and name every altered, deleted or cut-off record."""
    with _index() as (settings, sessions):
        key = AuditKey.from_settings(settings)
        with transaction(sessions, read_only=True) as session:
            total = session.scalar(select(func.count()).where(AccessRecord.chain_seq.is_not(None))) or 0
            with Progress(
                TextColumn("verifying the audit chain"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task("verify", total=total)
                verdict = verify(session, key, progress=lambda n: progress.advance(task, n))
    for line in describe(verdict):
        console.print(line, style=None if verdict.intact or not line.startswith("TAMPERED") else "red", markup=False)
    if not verdict.intact:
        raise typer.Exit(1)


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal the records not sealed yet now (the background sealer does it every few seconds)."""
    with _index() as (settings, sessions):
        sealed = seal_all(sessions, AuditKey.from_settings(settings))
    console.print(f"{sealed} record(s) sealed")


@audit_app.command("prune")
def audit_prune(
    days: Annotated[
        int | None, typer.Option(help="Keep this many days (default: YUNYING_AUDIT_RETENTION_DAYS).", min=1)
    ] = None,
) -> None:
    """Delete sealed records older than the retention period; the chain still verifies."""
    with _index() as (settings, sessions):
        keep = days if days is not None else settings.audit_retention_days
        if not keep:
            raise fail("retention is off (YUNYING_AUDIT_RETENTION_DAYS=0): nothing is ever pruned", 2)
        key = AuditKey.from_settings(settings)
        try:
            with transaction(sessions) as session:
                deleted = prune(session, key, older_than=utcnow() - timedelta(days=keep))
        except ValueError as exc:
            raise fail(str(exc)) from None
    console.print(f"{deleted} record(s) older than {keep} days pruned")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
