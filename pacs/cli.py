"""``yunying`` commands that belong to ``pacs``: the database, the receiver, import, sites and
AEs, and read-only views of studies, changes, quarantine and alerts."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from pacs import audit_cli, pki_cli
from pacs.cli_support import console, err, fail, load_settings, open_services
from pacs.edge import cli as edge_cli
from pacs.headers import build_headers
from pacs.identity import cli as identity_cli
from pacs.identity import node_cli
from pacs.identity.sites import ASSUMABLE_CHARSETS, IdentityError, add_site, add_site_ae, find_site
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.migrate import upgrade
from pacs.index.models import Alert, Change, Consortium, Quarantine, Site, SiteAE, Study
from pacs.ingest import Origin, OutcomeKind
from pacs.logs import configure_logging
from pacs.receiver_processes import run_receiver
from pacs.storage import StoreUnavailable

db_app = typer.Typer(help="The index database.", no_args_is_help=True)
site_app = typer.Typer(help="Sites (facilities) of a consortium.", no_args_is_help=True)
ae_app = typer.Typer(help="DICOM AE titles a site's modalities call from.", no_args_is_help=True)
study_app = typer.Typer(help="Studies in the index.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Instances kept aside for inspection.", no_args_is_help=True)


# ---------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the index schema to the latest version (safe to run repeatedly)."""
    settings = load_settings()
    configure_logging(settings)
    try:
        upgrade(settings.resolved_database_url)
    except OperationalError as exc:
        raise fail(f"cannot reach the database: {str(exc).splitlines()[0]}\nCheck YUNYING_DATABASE_URL.") from None
    console.print(f"Index schema is up to date at {settings.resolved_database_url}")


@db_app.command("headers")
def db_headers() -> None:
    """Build the DICOM JSON header of every instance that lacks one (the receiver leaves it
    for later; a study's headers are built when it turns stable). Safe to run at any time."""
    settings = load_settings()
    configure_logging(settings)
    services = open_services(settings)
    try:
        with console.status("Building DICOM JSON headers…"):
            built = build_headers(services.sessions)
    except IndexUnavailable as exc:
        raise fail(f"index unavailable: {exc}\nCheck YUNYING_DATABASE_URL.") from None
    finally:
        services.close()
    console.print(f"Built {built} header(s).")


# ---------------------------------------------------------------- receiver


def receiver(
    processes: Annotated[
        int,
        typer.Option(
            help="Receiver processes on the one port: a supervisor binds it and each new association goes to "
            "the process that holds the fewest."
        ),
    ] = 1,
    stability: Annotated[bool, typer.Option(help="Also mark quiet studies stable (in the first process).")] = True,
) -> None:
    """Run the DICOM receiver (C-ECHO, C-STORE, Q/R) until Ctrl-C or SIGTERM."""
    settings = load_settings()
    if processes <= 1:
        run_receiver(settings, stability=stability, sweep=True)
        return
    # The supervisor needs none of what this process has imported (~130 MB): replace it.
    command = [
        sys.executable,
        "-m",
        "pacs.receiver_processes",
        "--processes",
        str(processes),
        "--host",
        settings.dicom_host,
        "--port",
        str(settings.dicom_port),
    ]
    if settings.dicom_tls_port:
        command += ["--tls-host", settings.dicom_tls_host, "--tls-port", str(settings.dicom_tls_port)]
    if not stability:
        command.append("--no-stability")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)  # noqa: S606 (the supervisor replaces this process, no shell)


# ---------------------------------------------------------------- import


def import_files(
    path: Annotated[Path, typer.Argument(help="A DICOM file or a folder searched recursively.", exists=True)],
    site: Annotated[str, typer.Option(help="The site the studies come from (see `yunying site list`).")],
) -> None:
    """Bulk-load DICOM files through the same ingest path as C-STORE, with a progress bar."""
    import pydicom

    settings = load_settings()
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    services = open_services(settings)
    with transaction(services.sessions) as session:
        try:
            owner = find_site(session, site)
        except IdentityError as exc:
            raise fail(str(exc)) from None
        origin = Origin(site_id=owner.id, calling_ae=None, source_address="import")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    counts: dict[str, int] = {}
    problems: list[str] = []
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Importing", total=len(files))
        for file in files:
            outcome = services.ingest.receive(file, origin)
            if outcome.kind is OutcomeKind.MALFORMED and outcome.code == "not-part10":
                # A bare data set without file meta (older archives): give it Part-10 framing.
                try:
                    ds = pydicom.dcmread(file, force=True)
                    with tempfile.NamedTemporaryFile(suffix=".dcm") as tmp:
                        ds.save_as(tmp.name, enforce_file_format=True)
                        outcome = services.ingest.receive(Path(tmp.name), origin)
                except Exception as exc:  # noqa: BLE001 — reported per file, the import goes on
                    problems.append(f"{file}: cannot read as DICOM ({exc})")
                    progress.advance(task)
                    continue
            counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
            if not outcome.accepted:
                problems.append(f"{file}: {outcome.kind} — {outcome.reason}")
            progress.advance(task)
    services.close()
    console.print(", ".join(f"{kind}: {count}" for kind, count in sorted(counts.items())) or "no files")
    for problem in problems[:50]:
        err.print(f"[yellow]{problem}[/yellow]")
    if len(problems) > 50:
        err.print(f"… and {len(problems) - 50} more")
    if counts.get(OutcomeKind.UNAVAILABLE):
        raise typer.Exit(3)


# ---------------------------------------------------------------- sites and AEs


@site_app.command("add")
def site_add(
    name: Annotated[str, typer.Argument(help='The facility\'s name, e.g. "Fudong Health Centre".')],
    tier: Annotated[str, typer.Option(help="village | township | county | provincial")],
    consortium: Annotated[str, typer.Option(help="The medical consortium (created if new).")],
    contact: Annotated[str | None, typer.Option(help="Contact person and telephone.")] = None,
    return_ae: Annotated[str | None, typer.Option(help="AE title reports are sent back to.")] = None,
    return_host: Annotated[str | None, typer.Option(help="Host of the return destination.")] = None,
    return_port: Annotated[int | None, typer.Option(help="Port of the return destination.")] = None,
    report_image: Annotated[
        bool, typer.Option("--report-image", help="Also send reports as an image (PACS that show no SR or PDF).")
    ] = False,
    edge: Annotated[
        bool,
        typer.Option(
            "--edge", help="The site sends through a Yunying edge: hold its studies until the edge's manifest is met."
        ),
    ] = False,
) -> None:
    """Add a site to a consortium."""
    settings = load_settings()
    services = open_services(settings)
    try:
        with transaction(services.sessions) as session:
            site = add_site(
                session,
                consortium=consortium,
                name=name,
                tier=tier,
                contact=contact,
                return_ae_title=return_ae,
                return_host=return_host,
                return_port=return_port,
                return_report_image=report_image,
            )
            site.held_for_manifest = edge
            console.print(f"Site {site.id} {name!r} ({tier}) added to {consortium!r}")
    except IdentityError as exc:
        raise fail(str(exc)) from None


@site_app.command("edge")
def site_edge(
    name: Annotated[str, typer.Argument(help="The site's name (see `yunying site list`).")],
    off: Annotated[bool, typer.Option("--off", help="The site no longer sends through an edge.")] = False,
) -> None:
    """Mark a site as sending through a Yunying edge: its studies turn stable only once the edge's
    manifest of each is satisfied (at most YUNYING_MANIFEST_WAIT_S)."""
    services = open_services(load_settings())
    try:
        with transaction(services.sessions) as session:
            site = find_site(session, name)
            site.held_for_manifest = not off
    except IdentityError as exc:
        raise fail(str(exc)) from None
    finally:
        services.close()
    console.print(
        f"Site {name!r} " + ("no longer waits for edge manifests" if off else "now waits for its edge's manifests")
    )


@site_app.command("list")
def site_list(as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False) -> None:
    """List sites with their tier, consortium, AEs and return destination."""
    services = open_services(load_settings())
    with transaction(services.sessions) as session:
        rows = session.execute(select(Site, Consortium).join(Consortium).order_by(Consortium.name, Site.name)).all()
        ae_rows = session.scalars(select(SiteAE)).all()
    aes: dict[int, list[str]] = {}
    for entry in ae_rows:
        aes.setdefault(entry.site_id, []).append(entry.ae_title)
    if as_json:
        for site, consortium in rows:
            print(
                json.dumps(
                    {
                        "id": site.id,
                        "name": site.name,
                        "tier": site.tier,
                        "consortium": consortium.name,
                        "aes": aes.get(site.id, []),
                        "return": [site.return_ae_title, site.return_host, site.return_port],
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("id", "site", "tier", "consortium", "AEs", "returns to")
    for site, consortium in rows:
        destination = f"{site.return_ae_title}@{site.return_host}:{site.return_port}" if site.return_ae_title else "—"
        table.add_row(str(site.id), site.name, site.tier, consortium.name, ", ".join(aes.get(site.id, [])), destination)
    console.print(table)


@ae_app.command("add")
def ae_add(
    ae_title: Annotated[str, typer.Argument(help="The calling AE title the modality uses.")],
    site: Annotated[str, typer.Option(help="The site it belongs to.")],
    address: Annotated[str, typer.Option(help="Source IP address or CIDR network it may call from.")],
    charset: Annotated[
        str | None,
        typer.Option(help=f"Character set to assume when the modality sends none: {', '.join(ASSUMABLE_CHARSETS)}."),
    ] = None,
    description: Annotated[str | None, typer.Option(help='E.g. "CT room 1".')] = None,
) -> None:
    """Allow a modality's AE title, from an address, to send studies for a site."""
    services = open_services(load_settings())
    try:
        with transaction(services.sessions) as session:
            owner = find_site(session, site)
            entry = add_site_ae(
                session,
                site=owner,
                ae_title=ae_title,
                allowed_address=address,
                assumed_charset=charset,
                description=description,
            )
            console.print(f"AE {entry.ae_title} from {address} now sends for {owner.name!r}")
    except IdentityError as exc:
        raise fail(str(exc)) from None


@ae_app.command("list")
def ae_list() -> None:
    """List the AE titles allowed to send, with their site and address."""
    services = open_services(load_settings())
    with transaction(services.sessions) as session:
        rows = session.execute(select(SiteAE, Site).join(Site).order_by(Site.name, SiteAE.ae_title)).all()
    table = Table("AE title", "allowed from", "site", "assumed charset", "description")
    for entry, owner in rows:
        table.add_row(
            entry.ae_title, entry.allowed_address, owner.name, entry.assumed_charset or "—", entry.description or ""
        )
    console.print(table)


# ---------------------------------------------------------------- read-only views


@study_app.command("list")
def study_list(
    limit: Annotated[int, typer.Option(help="Most recent N studies.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List the most recently received studies."""
    services = open_services(load_settings())
    with transaction(services.sessions) as session:
        rows = session.execute(
            select(Study, Site).join(Site).order_by(Study.last_received_at.desc()).limit(limit)
        ).all()
    if as_json:
        for study, site in rows:
            print(
                json.dumps(
                    {
                        "study_uid": study.study_uid,
                        "site": site.name,
                        "patient_id": study.patient_id,
                        "patient_name": study.patient_name,
                        "modalities": study.modalities,
                        "num_series": study.num_series,
                        "num_instances": study.num_instances,
                        "bytes": study.bytes,
                        "state": study.state,
                        "last_received_at": study.last_received_at.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("study UID", "site", "patient", "modality", "series", "instances", "MB", "state", "last received")
    for study, site in rows:
        table.add_row(
            study.study_uid,
            site.name,
            f"{study.patient_name or ''} ({study.patient_id})",
            study.modalities,
            str(study.num_series),
            str(study.num_instances),
            f"{study.bytes / 1e6:.1f}",
            study.state,
            study.last_received_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


def changes(
    since: Annotated[int, typer.Option(help="Only changes with a sequence number above this.")] = 0,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. study.stable.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
) -> None:
    """Print the change feed as JSON lines (seq, kind, time, study, payload)."""
    services = open_services(load_settings())
    with transaction(services.sessions) as session:
        query = select(Change).where(Change.seq > since).order_by(Change.seq).limit(limit)
        if kind:
            query = query.where(Change.kind == kind)
        rows = session.scalars(query).all()
    for change in rows:
        print(
            json.dumps(
                {
                    "seq": change.seq,
                    "kind": change.kind,
                    "at": change.at.isoformat(),
                    "study_uid": change.study_uid,
                    "site_id": change.site_id,
                    **change.payload,
                },
                ensure_ascii=False,
            )
        )


@quarantine_app.command("list")
def quarantine_list(limit: Annotated[int, typer.Option(help="Most recent N.")] = 50) -> None:
    """List quarantined instances with why they were kept aside."""
    services = open_services(load_settings())
    with transaction(services.sessions) as session:
        rows = session.scalars(select(Quarantine).order_by(Quarantine.id.desc()).limit(limit)).all()
    table = Table("id", "when", "code", "reason", "from", "SOP instance", "object")
    for row in rows:
        table.add_row(
            str(row.id),
            row.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.reason_code,
            row.reason,
            f"{row.calling_ae or '—'}@{row.source_address or '—'}",
            row.sop_instance_uid or "—",
            row.object_key,
        )
    console.print(table)


def verify(
    quarantine_orphans: Annotated[
        bool, typer.Option(help="Move orphans under orphaned/ with a quarantine row (nothing is deleted).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per problem, then a summary.")] = False,
) -> None:
    """Check the index against the object store: every indexed object present, whole and with
    its recorded sha256, and every stored object referenced. Exits 1 on any problem."""
    from datetime import timedelta

    from pacs.integrity import count_rows, verify_store

    settings = load_settings()
    services = open_services(settings)
    try:
        total = count_rows(services.sessions)
        with Progress(
            TextColumn("checking objects"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("verify", total=total)
            result = verify_store(
                services.store,
                services.sessions,
                orphan_grace=timedelta(seconds=settings.orphan_grace_s),
                quarantine_orphans=quarantine_orphans,
                progress=lambda n: progress.advance(task, n),
            )
    except (IndexUnavailable, StoreUnavailable) as exc:
        raise fail(f"cannot verify: {exc}") from None
    finally:
        services.close()
    for finding in result.findings:
        if as_json:
            print(
                json.dumps(
                    {
                        "kind": finding.kind,
                        "object_key": finding.object_key,
                        "row": finding.row,
                        "detail": finding.detail,
                        "quarantined": finding.object_key in result.quarantined,
                    }
                )
            )
        else:
            moved = " — moved under orphaned/" if finding.object_key in result.quarantined else ""
            console.print(str(finding) + moved, markup=False, style="red")
    summary = (
        f"{result.objects_checked} indexed object(s) checked ({result.bytes_checked / 1e6:.1f} MB), "
        f"{result.objects_listed} stored object(s) listed: {result.count('missing')} missing, "
        f"{result.count('truncated')} truncated, {result.count('altered')} altered, "
        f"{result.count('orphan')} orphan(s)"
        + (f", {len(result.quarantined)} quarantined" if result.quarantined else "")
    )
    if as_json:
        print(json.dumps({"summary": summary, "ok": result.ok}))
    else:
        console.print(summary)
    if not result.ok:
        raise typer.Exit(1)


backup_app = typer.Typer(
    help="Back up and restore the embedded shape (SQLite + folder); PostgreSQL/S3: docs/operations.md.",
    no_args_is_help=True,
)


def _object_progress() -> Progress:
    return Progress(
        TextColumn("objects"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    )


@backup_app.command("create")
def backup_create(folder: Annotated[Path, typer.Argument(help="A new (or empty) folder for this backup.")]) -> None:
    """Snapshot the index (online, while the service runs) and then the objects into FOLDER."""
    from pacs.backup import BackupRefused, count_objects, create_backup

    settings = load_settings()
    try:
        with _object_progress() as progress:
            task = progress.add_task("backup", total=count_objects(settings))
            summary = create_backup(settings, folder, progress=lambda n: progress.advance(task, n))
    except BackupRefused as exc:
        raise fail(str(exc), 2) from None
    console.print(
        f"Backup in {summary.folder}: index at schema {summary.revision}, {summary.objects} object(s), "
        f"{summary.bytes / 1e6:.1f} MB ({summary.linked} hard-linked). Restore with `yunying backup restore`."
    )


@backup_app.command("restore")
def backup_restore(
    folder: Annotated[Path, typer.Argument(help="A folder made by `yunying backup create`.")],
    force: Annotated[bool, typer.Option(help="Replace an existing index (stop the service first).")] = False,
) -> None:
    """Restore a backup into YUNYING_HOME (the service stopped), then check it with `yunying verify`."""
    from pacs.backup import BackupRefused, restore_backup

    settings = load_settings()
    try:
        with _object_progress() as progress:
            task = progress.add_task("restore", total=None)
            summary = restore_backup(settings, folder, force=force, progress=lambda n: progress.advance(task, n))
    except BackupRefused as exc:
        raise fail(str(exc), 2) from None
    upgrade(settings.resolved_database_url)  # a backup from an older release is brought up to date
    console.print(
        f"Restored the backup of {summary.taken_at:%Y-%m-%d %H:%M} UTC: {summary.objects} object(s). "
        "Run `yunying verify` before starting the service."
    )


def alerts(limit: Annotated[int, typer.Option(help="Most recent N.")] = 50) -> None:
    """List alerts for sites and administrators (corrected re-sends, conflicting re-sends)."""
    services = open_services(load_settings())
    with transaction(services.sessions) as session:
        rows = session.execute(select(Alert, Site.name).outerjoin(Site).order_by(Alert.id.desc()).limit(limit)).all()
        total = session.scalar(select(func.count()).select_from(Alert).where(Alert.acknowledged_at.is_(None)))
    table = Table("id", "when", "kind", "site", "message")
    for alert, site_name in rows:
        table.add_row(
            str(alert.id), alert.created_at.strftime("%Y-%m-%d %H:%M:%S"), alert.kind, site_name or "—", alert.message
        )
    console.print(table)
    console.print(f"{total} unacknowledged")


def register(app: typer.Typer) -> None:
    """Add the pacs commands to the root ``yunying`` app."""
    app.add_typer(db_app, name="db")
    app.add_typer(site_app, name="site")
    app.add_typer(ae_app, name="ae")
    app.add_typer(study_app, name="study")
    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(backup_app, name="backup")
    identity_cli.register(app)
    audit_cli.register(app)
    pki_cli.register(app)
    node_cli.register(app)
    edge_cli.register(app)
    app.command("receiver")(receiver)
    app.command("import")(import_files)
    app.command("changes")(changes)
    app.command("alerts")(alerts)
    app.command("verify")(verify)
