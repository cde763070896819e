#!/usr/bin/env python
"""QA turnaround at the scale of a province: how long ``yunying qa recompute`` and the QA
dashboard's queries take on a year of a province's reading.

1. creates a fresh index (the PostgreSQL database named in ``--database-url``, refused if it
   exists; or a new SQLite file) and migrates it;
2. generates a province's history with the month factory of the tests, scaled up
   (``datasets/qa_history.py``: ``--consortiums`` × ``--catchments`` catchments of three sites
   and two county readers, a provincial reader per consortium, the same daily pattern of
   studies, claims, escalations, night and backlog breaches) over as many days up to
   2026-10-31 as ``--studies`` needs, padded with ``instance.stored`` events to ``--events``;
   bulk-written by ``datasets/qa_load.py`` (COPY on PostgreSQL), then ANALYZE;
3. times ``reading.qa.store.recompute`` (what ``yunying qa recompute`` runs) over the whole log;
4. times the dashboard's queries through the service layer (``reading.qa.service``, a fresh
   transaction each, as the API does) and through HTTP against a real ``yunying serve`` on the
   same index, as an installation admin (every consortium: the heaviest scope): turnaround by
   site, by reader, by priority and week, and the breach list, for October 2026 and for the
   whole range — p50/p95 of ``--repeats`` calls each;
5. the monthly PDF report of one consortium for October 2026 (read and drawn, as `yunying qa report`);
6. writes bench/results/qa-<timestamp>.json; docs/performance.md has the figures and this command.

Target (issue E): every dashboard query under 1 s on PostgreSQL.

    .venv/bin/python bench/qa.py --studies 100000 --events 1000000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/yunying_bench_qa
    .venv/bin/python bench/qa.py --studies 20000 --events 200000 --database-url sqlite:////tmp/qa-bench.db
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from dicomweb import Service, percentile  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from datasets.qa_history import HistorySpec  # noqa: E402
from datasets.qa_load import create_identity, write_history  # noqa: E402
from pacs.identity.users import add_user, create_token, find_user  # noqa: E402
from pacs.index.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from pacs.index.migrate import upgrade  # noqa: E402
from pacs.index.models import Change  # noqa: E402
from pacs.index.types import utcnow  # noqa: E402
from reading.qa.service import breach_list, figures  # noqa: E402
from reading.qa.store import recompute, refresh  # noqa: E402

console = Console(width=150)
LAST_DAY = dt.date(2026, 10, 31)
MONTH = (dt.date(2026, 10, 1), dt.date(2026, 11, 1))
STUDIES_PER_CATCHMENT_WEEK = 30  # A, B, C, F daily; D on Saturdays; E on Mondays
# The dashboard: (name, group_by or None for the breach list, period).
QUERIES: list[tuple[str, str | None, str]] = [
    ("turnaround by site", "site", "month"),
    ("turnaround by reader", "reader", "month"),
    ("turnaround by priority, week", "priority,period", "week"),
    ("breach list", None, "month"),
]


def fresh_database(url: str) -> Callable[[], None]:
    """Create the database of ``url`` (refusing one that exists); returns how to drop it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if path.exists():
            raise SystemExit(f"{path} exists: give a new file (the bench fills a fresh index)")

        def remove() -> None:
            for leftover in path.parent.glob(path.name + "*"):  # the file, its -wal and -shm
                leftover.unlink(missing_ok=True)

        return remove
    name = parsed.database
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            raise SystemExit(f"database {name} exists: name a new one (the bench fills a fresh index)")
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return drop


def spec_for(args: argparse.Namespace) -> HistorySpec:
    catchments = args.consortiums * args.catchments
    days = max(1, round(args.studies / (catchments * STUDIES_PER_CATCHMENT_WEEK / 7)))
    return HistorySpec(
        consortiums=args.consortiums,
        catchments=args.catchments,
        first_day=LAST_DAY - dt.timedelta(days=days - 1),
        days=days,
        events_per_study=args.events / args.studies,
    )


def generate(url: str, spec: HistorySpec) -> dict[str, Any]:
    """The identity, the history (timed with its progress bar), an admin token, ANALYZE."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    began = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"generating {spec.days} days of {spec.consortiums * spec.catchments} catchments")
        progress.update(bar, total=spec.days)
        with transaction(sessions) as session:
            ids = create_identity(session, spec)
            add_user(session, username="bench-admin", role="admin")
            token = create_token(session, find_user(session, "bench-admin"))[1]
            loaded = write_history(session, spec, ids, progress=lambda _: progress.advance(bar))
    generated = time.perf_counter() - began
    began = time.perf_counter()
    with transaction(sessions) as session:
        session.execute(text("ANALYZE"))
        changes = session.scalar(select(func.count()).select_from(Change)) or 0
    analysed = time.perf_counter() - began
    engine.dispose()
    console.print(
        f"generated {loaded.studies:,} studies, {loaded.tasks:,} reading tasks, {changes:,} changes "
        f"({spec.first_day} – {LAST_DAY}) in {generated:.1f} s; ANALYZE {analysed:.1f} s"
    )
    return {
        "token": token,
        "studies": loaded.studies,
        "tasks": loaded.tasks,
        "changes": changes,
        "generate_s": round(generated, 1),
        "analyze_s": round(analysed, 1),
    }


def time_recompute(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    began = time.perf_counter()
    with transaction(sessions) as session:
        rows = recompute(session)
    took = time.perf_counter() - began
    with transaction(sessions) as session:
        session.execute(text("ANALYZE qa_turnaround"))
    began = time.perf_counter()
    with transaction(sessions) as session:
        refresh(session)  # nothing new: what every dashboard query pays first
    idle = time.perf_counter() - began
    engine.dispose()
    console.print(f"recompute: {rows:,} rows in {took:.1f} s; a refresh with nothing new {idle * 1000:.1f} ms")
    return {"rows": rows, "recompute_s": round(took, 1), "idle_refresh_ms": round(idle * 1000, 1)}


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 1),
        "p95_ms": round(percentile(samples, 95) * 1000, 1),
        "mean_ms": round(statistics.fmean(samples) * 1000, 1),
    }


def time_service(url: str, repeats: int) -> list[dict[str, Any]]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    found = []
    for name, group_by, period in QUERIES:
        for label, (start, end) in (("October 2026", MONTH), ("whole range", (None, None))):
            samples, size = [], 0
            for _ in range(repeats + 1):  # the first call warms caches and is not counted
                began = time.perf_counter()
                with transaction(sessions) as session:
                    if group_by is None:
                        size = len(breach_list(session, None, start=start, end=end, now=utcnow()))
                    else:
                        groups = figures(
                            session,
                            None,
                            group_by=group_by.split(","),
                            period=period,
                            start=start,
                            end=end,
                            now=utcnow(),
                        )
                        size = sum(g.count for g in groups)
                samples.append(time.perf_counter() - began)
            found.append({"query": name, "range": label, "via": "service", "rows": size, **_summary(samples[1:])})
            console.print(f"  service  {name:<30} {label:<13} {found[-1]['p50_ms']:>8} / {found[-1]['p95_ms']} ms")
    engine.dispose()
    return found


def time_http(url: str, token: str, repeats: int) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="yy-qa-bench-"))
    service = Service(home, url)
    found = []
    try:
        with service.running(), httpx.Client(timeout=120) as client:
            base = f"http://127.0.0.1:{service.http_port}/api/qa"
            auth = {"Authorization": f"Bearer {token}"}
            for name, group_by, period in QUERIES:
                for label, (start, end) in (("October 2026", MONTH), ("whole range", (None, None))):
                    params: dict[str, str] = {}
                    if start is not None and end is not None:
                        params.update({"from": start.isoformat(), "to": end.isoformat()})
                    path = "/breaches"
                    if group_by is not None:
                        path = "/turnaround"
                        params.update(group_by=group_by, period=period)
                    samples, server, size = [], [], 0
                    for _ in range(repeats + 1):
                        began = time.perf_counter()
                        answer = client.get(base + path, params=params, headers=auth)
                        samples.append(time.perf_counter() - began)
                        if answer.status_code != 200:
                            raise SystemExit(f"GET {path} {params}: {answer.status_code} {answer.text[:300]}")
                        timing = answer.headers.get("server-timing", "")
                        if "dur=" in timing:
                            server.append(float(timing.split("dur=")[1].split(",")[0]) / 1000)
                        body = answer.json()
                        size = len(body["breaches"]) if group_by is None else sum(g["count"] for g in body["groups"])
                    entry = {"query": name, "range": label, "via": "http", "rows": size, **_summary(samples[1:])}
                    if len(server) > 1:
                        entry.update({f"server_{k}": v for k, v in _summary(server[1:]).items()})
                    found.append(entry)
                    console.print(f"  http     {name:<30} {label:<13} {entry['p50_ms']:>8} / {entry['p95_ms']} ms")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return found


# ---------------------------------------------------------------------- report step
def time_report(url: str, repeats: int) -> list[dict[str, Any]]:
    """October 2026's monthly PDF for one consortium (its own month of the generated province),
    through the service layer exactly as `yunying qa report` builds it: read, then draw."""
    from sqlalchemy import select

    from pacs.index.models import Consortium
    from reading.qa.monthly import month_scope
    from reading.qa.report import build_report_pdf, prepare_report

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        consortium = session.scalars(select(Consortium.name).order_by(Consortium.id)).first()
    reads, draws, totals, size = [], [], [], 0
    for _ in range(min(repeats, 3) + 1):  # the first call warms caches and is not counted
        began = time.perf_counter()
        with transaction(sessions) as session:
            prepared = prepare_report(session, month_scope(session, None, consortium, "2026-10", utcnow()))
        read = time.perf_counter()
        size = len(build_report_pdf(prepared))
        done = time.perf_counter()
        reads.append(read - began)
        draws.append(done - read)
        totals.append(done - began)
    engine.dispose()
    entry = {
        "query": f"monthly PDF report, {consortium}",
        "range": "October 2026",
        "via": "service",
        "bytes": size,
        "read_p50_ms": _summary(reads[1:])["p50_ms"],
        "draw_p50_ms": _summary(draws[1:])["p50_ms"],
        **_summary(totals[1:]),
    }
    console.print(f"  report   {entry['query']:<30} {entry['range']:<13} {entry['p50_ms']:>8} / {entry['p95_ms']} ms")
    return [entry]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100_000, help="studies to generate (about: whole days)")
    parser.add_argument("--events", type=int, default=1_000_000, help="change-log events in all (padding)")
    parser.add_argument(
        "--database-url",
        default=f"postgresql+psycopg://postgres@127.0.0.1:5432/yunying_bench_qa_{os.getpid()}",
        help="a database the bench creates (PostgreSQL: refused if it exists) or a new SQLite file",
    )
    parser.add_argument("--consortiums", type=int, default=10)
    parser.add_argument("--catchments", type=int, default=7, help="per consortium (3 sites, 2 county readers each)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per query")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP measurements")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    spec = spec_for(args)
    kind = make_url(args.database_url).get_backend_name()
    drop = fresh_database(args.database_url)
    started = dt.datetime.now()
    try:
        upgrade(args.database_url)
        generated = generate(args.database_url, spec)
        recomputed = time_recompute(args.database_url)
        queries = time_service(args.database_url, args.repeats)
        if not args.no_http:
            queries += time_http(args.database_url, generated.pop("token"), args.repeats)
        report = time_report(args.database_url, args.repeats)
    finally:
        if args.keep:
            console.print(f"kept {args.database_url}")
        else:
            drop()
    generated.pop("token", None)

    table = Table(title=f"QA on {kind}: {generated['studies']:,} studies, {generated['changes']:,} changes")
    for column in ("query", "range", "via", "tasks / breaches", "p50 ms", "p95 ms", "in server p50 / p95"):
        table.add_column(column)
    for q in queries:
        server = f"{q['server_p50_ms']} / {q['server_p95_ms']}" if "server_p50_ms" in q else ""
        table.add_row(q["query"], q["range"], q["via"], f"{q['rows']:,}", str(q["p50_ms"]), str(q["p95_ms"]), server)
    console.print(table)
    slowest = max(queries, key=lambda q: q["p95_ms"])
    console.print(
        f"generate {generated['generate_s']} s, recompute {recomputed['recompute_s']} s; slowest p95 "
        f"{slowest['p95_ms']} ms ({slowest['query']}, {slowest['range']}, {slowest['via']}) — "
        + ("under 1 s" if slowest["p95_ms"] < 1000 else "OVER 1 s")
    )
    out = BENCH / "results" / f"qa-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "argv": sys.argv[1:],
                "date": started.isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "index": kind,
                "spec": {
                    "consortiums": spec.consortiums,
                    "catchments_per_consortium": spec.catchments,
                    "sites": spec.consortiums * spec.catchments * 3,
                    "readers": spec.consortiums * (spec.catchments * 2 + 1),
                    "first_day": spec.first_day.isoformat(),
                    "days": spec.days,
                    "events_per_study": round(spec.events_per_study, 2),
                },
                **generated,
                **recomputed,
                "queries": queries,
                "report": report,
                "percentiles": "nearest rank (bench/dicomweb.py percentile)",
                "target": "every dashboard query < 1 s on PostgreSQL",
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    console.print(f"figures written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
