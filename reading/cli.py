"""``yunying reader|roster|group|rule|sla|worklist|delivery|worker``: reading administration
from the command line, and the reading workers as their own processes (production shape)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.cli_support import console, fail, load_settings, open_services, serve_metrics
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Consortium, Site, User
from pacs.index.types import utcnow
from pacs.logs import configure_logging
from pacs.service import Services
from pacs.settings import Mode
from reading.admin import add_reader, find_reader, parse_window, set_roster
from reading.admin_rules import add_group, add_rule, group_named, member_names, rename_group, set_group_members, set_sla
from reading.errors import NotFound, ReadingError
from reading.models import Delivery, DeliveryState, Reader, ReadingGroup, RosterWindow, RoutingRule, SlaRule
from reading.settings import ReadingSettings
from reading.worklist.queries import Filters, worklist

reader_app = typer.Typer(
    help="Readers (radiologists): tier, credentials, the sites they read for.", no_args_is_help=True
)
roster_app = typer.Typer(help="On-duty rosters of readers.", no_args_is_help=True)
rule_app = typer.Typer(help="Routing rules of a consortium.", no_args_is_help=True)
sla_app = typer.Typer(help="The SLA table (minutes to a signed report) of a consortium.", no_args_is_help=True)
group_app = typer.Typer(help="Reading groups.", no_args_is_help=True)
delivery_app = typer.Typer(help="Report deliveries back to the sites.", no_args_is_help=True)
worker_app = typer.Typer(help="Background workers as their own processes (production shape).", no_args_is_help=True)
qa_app = typer.Typer(
    help="Quality: turnaround, SLA compliance and breaches, from the change log.", no_args_is_help=True
)


def _services() -> Services:
    return open_services(load_settings())


def _run(action: str, work: Callable[[Session], str], *, plain: bool = False) -> None:
    """Run ``work(session)`` in one transaction and print what it says it did (``plain``: as
    is, e.g. CSV, never wrapped or styled); refusals print their fix and exit 1."""
    services = _services()
    try:
        with transaction(services.sessions) as session:
            done = work(session)
        if plain:
            typer.echo(done, nl=False)
        else:
            console.print(done)
    except ReadingError as exc:
        raise fail(f"{action}: {exc}") from None
    except IndexUnavailable as exc:
        raise fail(f"index unavailable: {exc}\nCheck YUNYING_DATABASE_URL.") from None
    finally:
        services.close()


@reader_app.command("add")
def reader_add(
    username: Annotated[str, typer.Argument(help="Login name; a reader user is created when new.")],
    consortium: Annotated[str, typer.Option(help="The reader's home consortium (its time zone is his roster's).")],
    tier: Annotated[str, typer.Option(help="county | provincial")],
    modality: Annotated[list[str], typer.Option(help="A modality he is credentialed for (repeat: CT, DX, …).")],
    body_part: Annotated[
        list[str] | None, typer.Option(help="Limit to these body parts (repeat; default all).")
    ] = None,
    site: Annotated[list[str] | None, typer.Option(help="A site he reads for (repeat).")] = None,
    reads_for: Annotated[list[str] | None, typer.Option(help="A consortium he reads for (repeat).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name, e.g. 李医生.")] = None,
    on_duty: Annotated[
        list[str] | None, typer.Option(help="Roster window: 'mon 08:00-17:30', 'daily 20:00-08:00'.")
    ] = None,
) -> None:
    """Add a reader. Without --site or --reads-for he reads for his own consortium."""

    def work(session: Session) -> str:
        reader = add_reader(
            session,
            username=username,
            consortium=consortium,
            tier=tier,
            modalities=modality,
            body_parts=body_part or [],
            reads_for_sites=site or [],
            reads_for_consortiums=reads_for or [],
            display_name=name,
        )
        if on_duty:
            set_roster(session, username, [parse_window(w) for w in on_duty])
        return f"Reader {reader.id} {username!r} ({tier}, {', '.join(reader.modalities)}) added"

    _run("cannot add the reader", work)


@reader_app.command("list")
def reader_list() -> None:
    """Readers with tier, credentials and roster."""
    services = _services()
    try:
        with transaction(services.sessions, read_only=True) as session:
            table = Table("id", "user", "name", "tier", "modalities", "body parts", "roster")
            for reader, user in session.execute(select(Reader, User).join(User, User.id == Reader.user_id)):
                windows = session.scalars(select(RosterWindow).where(RosterWindow.reader_id == reader.id)).all()
                days = "mon tue wed thu fri sat sun".split()
                roster = ", ".join(
                    f"{days[w.weekday] if w.weekday is not None else (w.on_date or 'daily')} {w.start}-{w.end}"
                    for w in windows
                )
                table.add_row(
                    str(reader.id),
                    user.username,
                    user.display_name or "",
                    reader.tier,
                    " ".join(reader.modalities),
                    " ".join(reader.body_parts) or "all",
                    roster or "never on duty",
                )
        console.print(table)
    finally:
        services.close()


@roster_app.command("set")
def roster_set(
    username: str,
    window: Annotated[
        list[str], typer.Argument(help="'mon 08:00-17:30', 'daily 20:00-08:00', '2026-12-01 08:00-20:00'")
    ],
) -> None:
    """Replace a reader's on-duty windows (times in his consortium's time zone)."""

    def work(session: Session) -> str:
        set_roster(session, username, [parse_window(w) for w in window])
        return f"Roster of {username} set: {', '.join(window)}"

    _run("cannot set the roster", work)


@group_app.command("add")
def group_add(
    name: str,
    consortium: Annotated[str, typer.Option()],
    tier: Annotated[str, typer.Option(help="county | provincial")],
    member: Annotated[list[str] | None, typer.Option(help="A reader's username (repeat).")] = None,
) -> None:
    """Add a reading group (routing rules can send tasks to it)."""

    def work(session: Session) -> str:
        group = add_group(session, consortium=consortium, name=name, tier=tier, members=member or [])
        return f"Reading group {group.id} {name!r} added"

    _run("cannot add the group", work)


@group_app.command("list")
def group_list(
    consortium: Annotated[str | None, typer.Option(help="Only this consortium's groups.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The reading groups, with their tier and readers."""
    services = _services()
    try:
        with transaction(services.sessions, read_only=True) as session:
            query = (
                select(ReadingGroup, Consortium.name)
                .join(Consortium, Consortium.id == ReadingGroup.consortium_id)
                .order_by(Consortium.name, ReadingGroup.name)
            )
            if consortium is not None:
                query = query.where(Consortium.name == consortium)
            rows: list[dict[str, Any]] = [
                {
                    "id": group.id,
                    "name": group.name,
                    "consortium": owner,
                    "tier": group.tier,
                    "members": member_names(session, group.id),
                }
                for group, owner in session.execute(query)
            ]
    except IndexUnavailable as exc:
        raise fail(f"index unavailable: {exc}\nCheck YUNYING_DATABASE_URL.") from None
    finally:
        services.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table("id", "consortium", "name", "tier", "readers")
    for row in rows:
        table.add_row(str(row["id"]), row["consortium"], row["name"], row["tier"], ", ".join(row["members"]) or "—")
    console.print(table)


@group_app.command("rename")
def group_rename(
    name: Annotated[str, typer.Argument(help="The group's name now.")],
    new_name: Annotated[str, typer.Argument(help="Its new name.")],
    consortium: Annotated[str, typer.Option()],
) -> None:
    """Rename a reading group; its rules and tasks stay its own (they hold its id)."""

    def work(session: Session) -> str:
        group = group_named(session, consortium, name)
        if rename_group(session, group, new_name) is None:
            return f"Reading group {group.id} is already named {group.name!r}: nothing changed"
        return f"Reading group {group.id} renamed from {name!r} to {group.name!r}"

    _run("cannot rename the group", work)


@group_app.command("members")
def group_members(
    name: str,
    consortium: Annotated[str, typer.Option()],
    member: Annotated[
        list[str] | None, typer.Option(help="A reader's username (repeat): the group's readers from now on.")
    ] = None,
    none: Annotated[
        bool, typer.Option("--none", help="Leave the group without readers (its tasks wait until it has some).")
    ] = False,
) -> None:
    """Set a reading group's readers (replacing those it has); tasks it holds stay its tasks."""
    if bool(member) == none:
        raise fail("name the readers with --member (repeat it), or empty the group with --none")

    def work(session: Session) -> str:
        group = group_named(session, consortium, name)
        changed = set_group_members(session, group, member or [])
        if not changed:
            return f"Reading group {name!r}: its readers are already {', '.join(member or []) or 'none'}"
        parts = [f"{k} {', '.join(v)}" for k, v in changed.items() if v]
        return f"Reading group {name!r}: {'; '.join(parts)}"

    _run("cannot set the group's readers", work)


@rule_app.command("add")
def rule_add(
    name: str,
    consortium: Annotated[str, typer.Option()],
    position: Annotated[int, typer.Option(help="Rules are tried in this order.")] = 100,
    site: Annotated[str | None, typer.Option(help="Match: a site.")] = None,
    site_tier: Annotated[str | None, typer.Option(help="Match: village | township | county | provincial.")] = None,
    modality: Annotated[str | None, typer.Option(help="Match: a modality.")] = None,
    body_part: Annotated[str | None, typer.Option(help="Match: a body part.")] = None,
    to_tier: Annotated[str | None, typer.Option(help="Then: route to county | provincial.")] = None,
    to_group: Annotated[str | None, typer.Option(help="Then: give to this reading group.")] = None,
    min_priority: Annotated[str | None, typer.Option(help="Then: at least stat | urgent | routine.")] = None,
) -> None:
    """Add a routing rule (the first matching rule applies)."""

    def work(session: Session) -> str:
        rule = add_rule(
            session,
            consortium=consortium,
            name=name,
            position=position,
            site=site,
            site_tier=site_tier,
            modality=modality,
            body_part=body_part,
            to_tier=to_tier,
            to_group=to_group,
            min_priority=min_priority,
        )
        return f"Routing rule {rule.id} {name!r} added"

    _run("cannot add the rule", work)


@rule_app.command("list")
def rule_list() -> None:
    services = _services()
    try:
        with transaction(services.sessions, read_only=True) as session:
            table = Table("id", "pos", "name", "match", "then")
            for r in session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)):
                match = " ".join(
                    f"{k}={v}"
                    for k, v in (
                        ("site", r.site_id),
                        ("site_tier", r.site_tier),
                        ("modality", r.modality),
                        ("body_part", r.body_part),
                    )
                    if v
                )
                then = " ".join(
                    f"{k}={v}"
                    for k, v in (("tier", r.to_tier), ("group", r.to_group_id), ("min_priority", r.min_priority))
                    if v
                )
                table.add_row(str(r.id), str(r.position), r.name, match, then)
        console.print(table)
    finally:
        services.close()


@sla_app.command("set")
def sla_set(
    consortium: Annotated[str, typer.Option()],
    priority: Annotated[str, typer.Option(help="stat | urgent | routine")],
    minutes: Annotated[int, typer.Option(help="Minutes from ready-for-reading to signed.")],
    modality: Annotated[str | None, typer.Option(help="Only for this modality (e.g. DX).")] = None,
) -> None:
    """Set one entry of the SLA table (defaults: stat 30, urgent 60, routine 1440 minutes)."""

    def work(session: Session) -> str:
        row = set_sla(session, consortium=consortium, priority=priority, minutes=minutes, modality=modality)
        return f"SLA {row.priority} {row.modality or 'all modalities'}: {row.minutes} min"

    _run("cannot set the SLA", work)


@sla_app.command("list")
def sla_list() -> None:
    services = _services()
    try:
        with transaction(services.sessions, read_only=True) as session:
            table = Table("consortium", "priority", "modality", "minutes")
            for row in session.scalars(select(SlaRule).order_by(SlaRule.consortium_id, SlaRule.priority)):
                table.add_row(str(row.consortium_id), row.priority, row.modality or "all", str(row.minutes))
        console.print(table)
        console.print("Without an entry: stat 30, urgent 60, routine 1440 minutes.")
    finally:
        services.close()


def worklist_command(
    username: Annotated[str, typer.Argument(help="The reader whose worklist to show.")],
    limit: int = 50,
) -> None:
    """A reader's worklist as he sees it: stat first, then nearest deadline."""
    services = _services()
    try:
        with transaction(services.sessions, read_only=True) as session:
            reader = find_reader(session, username)
            rows, counts = worklist(session, reader, Filters(), now=utcnow(), limit=limit)
            table = Table("task", "priority", "deadline", "state", "site", "patient", "study", "why")
            for row in rows:
                t = row.task
                table.add_row(
                    str(t.id),
                    t.priority,
                    f"{t.deadline_at:%m-%d %H:%M}",
                    t.state,
                    row.site_name,
                    row.patient_name or "",
                    " ".join(p for p in (t.modality, t.body_part) if p),
                    t.route_reason,
                )
        console.print(table)
        console.print("  ".join(f"{state}: {n}" for state, n in counts.items()))
    except ReadingError as exc:
        raise fail(str(exc)) from None
    finally:
        services.close()


@delivery_app.command("list")
def delivery_list(
    state: Annotated[DeliveryState | None, typer.Option(help="Only deliveries in this state.")] = None,
) -> None:
    """Deliveries with their attempts and last error."""
    services = _services()
    try:
        with transaction(services.sessions, read_only=True) as session:
            statement = select(Delivery, Site.name).join(Site, Site.id == Delivery.site_id).order_by(Delivery.id)
            if state:
                statement = statement.where(Delivery.state == state)
            table = Table("id", "report", "site", "state", "attempts", "destination", "last error")
            for d, site_name in session.execute(statement):
                table.add_row(
                    str(d.id),
                    str(d.report_id),
                    site_name,
                    d.state,
                    str(d.attempts),
                    f"{d.ae_title}@{d.host}:{d.port}" if d.ae_title else "site pulls",
                    d.last_error or "",
                )
        console.print(table)
    finally:
        services.close()


def _run_workers(*, sweeper: bool, delivery: bool) -> None:
    from pacs.audit_chain import AuditSealer
    from reading.delivery import DeliveryWorker
    from reading.worklist.sweeper import ReadingSweeper

    settings = load_settings()
    configure_logging(settings)
    serve_metrics(settings)
    reading = ReadingSettings()
    services = open_services(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    workers: list[ReadingSweeper | DeliveryWorker | AuditSealer] = []
    if sweeper:
        workers.append(ReadingSweeper(services.sessions, reading, demo=settings.mode is Mode.DEMO))
        workers.append(AuditSealer(services.sessions, settings))
    if delivery:
        workers.append(DeliveryWorker(services.sessions, reading))
    for worker in workers:
        worker.start()
    console.print(f"Running {', '.join(type(w).__name__ for w in workers)}; Ctrl-C stops.")
    stop.wait()
    for worker in workers:
        worker.stop()
    services.close()


@worker_app.command("reading")
def worker_reading() -> None:
    """The reading sweeper: AI timeout hand-over, routing, leases, SLA breaches, late images,
    unacknowledged critical results; and the access audit's sealer. Several may run."""
    _run_workers(sweeper=True, delivery=False)


@worker_app.command("delivery")
def worker_delivery() -> None:
    """The delivery worker: C-STOREs signed reports to the sites' return destinations. Several may run."""
    _run_workers(sweeper=False, delivery=True)


@qa_app.command("recompute")
def qa_recompute() -> None:
    """Rebuild the turnaround table from the whole change log (it is only ever derived)."""
    from reading.qa.store import recompute

    _run("qa recompute", lambda session: f"{recompute(session)} reading task(s) recomputed from the change log")


def _consortium_id(session: Session, name: str | None) -> int | None:
    if name is None:
        return None
    found = session.scalar(select(Consortium.id).where(Consortium.name == name))
    if found is None:
        raise NotFound(f"no consortium {name!r}; `yunying site list` shows them")
    return found


@qa_app.command("turnaround")
def qa_turnaround(
    group_by: Annotated[
        str,
        typer.Option(
            help="Comma-separated: consortium, site, site_tier, reader, tier, modality, body_part, priority, period."
        ),
    ] = "site",
    period: Annotated[str, typer.Option(help="day, week or month (with --group-by period).")] = "month",
    start: Annotated[str | None, typer.Option("--from", help="First local date, e.g. 2026-10-01.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="The local date after the last, e.g. 2026-11-01.")] = None,
    month: Annotated[str | None, typer.Option(help="A whole month, e.g. 2026-10 (instead of --from/--to).")] = None,
    consortium: Annotated[str | None, typer.Option(help="Only this consortium.")] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """Turnaround per group: count, SLA compliance, p50/p90/p95 minutes per interval."""
    from reading.qa.service import figures, figures_csv, month_range, parse_day

    dimensions = [g.strip() for g in group_by.split(",") if g.strip()]

    def work(session: Session) -> str:
        first, after = month_range(month) if month else (parse_day(start, "--from"), parse_day(end, "--to"))
        groups = figures(
            session,
            _consortium_id(session, consortium),
            group_by=dimensions,
            period=period,
            start=first,
            end=after,
            now=utcnow(),
        )
        if csv_out:
            return figures_csv(groups, dimensions)
        table = Table(*dimensions, "tasks", "SLA met", "wait p50/p90", "signed p50/p90", "report p50/p90/p95 (min)")
        for group in groups:
            data = group.as_json()
            m = data["minutes"]
            compliance = f"{group.compliance:.0%}" if group.compliance is not None else "—"
            table.add_row(
                *(group.key[d] for d in dimensions),
                str(group.count),
                f"{compliance} ({group.met}/{group.met + group.breached})",
                _pair(m["claimed"]),
                _pair(m["signed"]),
                _pair(m["report"], with_p95=True),
            )
        console.print(table)
        return f"{sum(g.count for g in groups)} task(s) in {len(groups)} group(s)"

    _run("qa turnaround", work, plain=csv_out)


def _pair(figure: dict[str, Any], *, with_p95: bool = False) -> str:
    if not figure["n"]:
        return "—"
    values = [figure["p50"], figure["p90"]] + ([figure["p95"]] if with_p95 else [])
    return "/".join(f"{v:.0f}" for v in values)


@qa_app.command("breaches")
def qa_breaches(
    start: Annotated[str | None, typer.Option("--from", help="First local date, e.g. 2026-10-01.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="The local date after the last.")] = None,
    consortium: Annotated[str | None, typer.Option(help="Only this consortium.")] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """Reading tasks past their deadline, with the interval that ran long."""
    from reading.qa.service import breach_list, breaches_csv, name_lookup, parse_day

    def work(session: Session) -> str:
        found = breach_list(
            session,
            _consortium_id(session, consortium),
            start=parse_day(start, "--from"),
            end=parse_day(end, "--to"),
            now=utcnow(),
        )
        names = name_lookup(session)
        if csv_out:
            return breaches_csv(found, names)
        table = Table("task", "site", "tier", "priority", "deadline", "late (min)", "cause")
        for b in found:
            table.add_row(
                str(b.task_id),
                names("site", b.site_id),
                b.tier,
                b.priority,
                f"{b.deadline_at:%m-%d %H:%M}",
                f"{b.late_minutes:.0f}",
                b.cause,
            )
        console.print(table)
        return f"{len(found)} breach(es)"

    _run("qa breaches", work, plain=csv_out)


def register(app: typer.Typer) -> None:
    from reading.peer_cli import peer_app  # imports this module's _run: registered once it is loaded

    qa_app.add_typer(peer_app, name="peer")

    from reading.cli_qa import register as register_qa_exports  # qa workload|ai|report

    register_qa_exports(qa_app)
    app.add_typer(reader_app, name="reader")
    app.add_typer(qa_app, name="qa")
    app.add_typer(roster_app, name="roster")
    app.add_typer(group_app, name="group")
    app.add_typer(rule_app, name="rule")
    app.add_typer(sla_app, name="sla")
    app.add_typer(delivery_app, name="delivery")
    app.add_typer(worker_app, name="worker")
    app.command("worklist")(worklist_command)
