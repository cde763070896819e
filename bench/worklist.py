#!/usr/bin/env python
"""The reading worklist under load: query latency, claim throughput, and the machine time from
a study's last image to its task being claimable.

For each index (a PostgreSQL throw-away database ``yunying_bench_<random>``, or a SQLite file):

1. migrates a fresh index; adds a consortium of ``--sites`` sites (township and village) with
   one AE, ``--readers`` readers (three quarters county, a quarter provincial; credentialed for
   CT, DX and CR in random combinations; most on duty around the clock) and a token for each;
2. loads ``--tasks`` open reading tasks (70 % queued, 20 % claimed, 10 % preliminary; stat 5 %,
   urgent 15 %, routine 80 %; deadlines in the next two days, so the sweeper leaves them alone),
   each with its own patient and study row, by Core bulk inserts — then ANALYZE;
3. starts a real ``yunying serve`` and measures with httpx:
   * ``GET /api/worklist`` (50 rows and the counts per state) for a random reader each time,
     one client — p50/p95 of the round trip and of the server's own time (Server-Timing);
   * claims: ``--claimers`` threads, each a county reader, ``POST /api/worklist/next`` in a loop
     for ``--seconds`` — claims/s, and that no task was claimed twice;
   * hand-off: a 20-slice CT sent by dcmtk ``storescu`` from a site's AE; the time from
     storescu's exit to the task's row, minus the stability delay (1 s). AI is excluded: the
     AI timeout is 0.05 s, as if a pre-screen answered at once — ``--handoffs`` runs, median.

The clients run on the same 2 cores as the server. Results go to
bench/results/worklist-<timestamp>.json; docs/performance.md has the figures and this command.

    .venv/bin/python bench/worklist.py                                   # PostgreSQL, 100,000 tasks
    .venv/bin/python bench/worklist.py --index sqlite --tasks 20000 --requests 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from dicomweb import PG_ADMIN, Service, percentile  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from pacs.identity.sites import add_site, add_site_ae  # noqa: E402
from pacs.identity.users import create_token, find_user  # noqa: E402
from pacs.index.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from pacs.index.migrate import upgrade  # noqa: E402
from pacs.index.models import Change, Patient, Study  # noqa: E402
from pacs.index.types import utcnow  # noqa: E402
from reading.admin import add_reader, parse_window, set_roster  # noqa: E402
from reading.models import PRIORITY_RANK, Priority, Reader, ReadingTask  # noqa: E402

console = Console()
MODALITY_SETS = (["CT"], ["DX", "CR"], ["CT", "DX", "CR"], ["CT", "DX"])


def setup_identity(url: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    tokens: dict[str, str] = {}
    county: list[str] = []
    with transaction(sessions) as session:
        site_ids = []
        for n in range(args.sites):
            site = add_site(
                session,
                consortium="Bench",
                name=f"Site {n:02d}",
                tier="township" if n % 4 else "village",
                return_ae_title=f"SITE{n:02d}_PACS",
                return_host="127.0.0.1",
                return_port=1,
            )
            site_ids.append(site.id)
        add_site_ae(
            session, site=session.get_one(type(site), site_ids[1]), ae_title="BENCH_CT", allowed_address="127.0.0.1"
        )
        for n in range(args.readers):
            tier = "county" if n % 4 else "provincial"
            name = f"reader{n:03d}"
            add_reader(session, username=name, consortium="Bench", tier=tier, modalities=rng.choice(MODALITY_SETS))
            always = n % 5 != 0
            set_roster(
                session,
                name,
                [parse_window("daily 00:00-12:00"), parse_window("daily 12:00-00:00")]
                if always
                else [parse_window("daily 08:00-17:30")],
            )
            tokens[name] = create_token(session, find_user(session, name))[1]
            if tier == "county":
                county.append(name)
        readers = {r.id: (r.tier, list(r.modalities)) for r in session.scalars(select(Reader))}
    engine.dispose()
    return {"site_ids": site_ids, "tokens": tokens, "county": county, "readers": readers}


def load_tasks(url: str, args: argparse.Namespace, world: dict[str, Any], rng: random.Random) -> None:
    engine = create_engine(url)
    now = utcnow()
    readers = world["readers"]
    by_kind: dict[tuple[str, str], list[int]] = {}
    for reader_id, (tier, modalities) in readers.items():
        for modality in modalities:
            by_kind.setdefault((tier, modality), []).append(reader_id)
    batch = 5000
    with Progress(console=console) as progress:
        bar = progress.add_task("loading tasks", total=args.tasks)
        with engine.begin() as connection:
            next_patient = 1
            for start in range(0, args.tasks, batch):
                size = min(batch, args.tasks - start)
                patients, studies, tasks = [], [], []
                for i in range(start, start + size):
                    site_id = rng.choice(world["site_ids"])
                    modality = rng.choices(["CT", "DX", "CR"], weights=[4, 4, 2])[0]
                    patients.append(
                        {
                            "id": next_patient,
                            "site_id": site_id,
                            "patient_id": f"P{i:07d}",
                            "patient_name": f"BENCH^{i}",
                        }
                    )
                    studies.append(
                        {
                            "id": i + 1,
                            "study_uid": f"1.2.826.0.1.3680043.10.1.{i}",
                            "site_id": site_id,
                            "patient_pk": next_patient,
                            "patient_id": f"P{i:07d}",
                            "patient_name": f"BENCH^{i}",
                            "study_date": "20261123",
                            "modalities": modality,
                            "body_part": "CHEST",
                            "num_series": 1,
                            "num_instances": 1,
                            "bytes": 0,
                            "state": "stable",
                            "first_received_at": now,
                            "last_received_at": now,
                            "stable_at": now,
                            "ready_at": now,
                        }
                    )
                    next_patient += 1
                    tier = "county" if rng.random() < 0.85 else "provincial"
                    state = rng.choices(["queued", "claimed", "preliminary"], weights=[7, 2, 1])[0]
                    priority = rng.choices(list(Priority), weights=[5, 15, 80])[0]
                    holder = rng.choice(by_kind.get((tier, modality), [None])) if state != "queued" else None
                    if state != "queued" and holder is None:
                        state = "queued"
                    tasks.append(
                        {
                            "id": i + 1,
                            "study_pk": i + 1,
                            "study_uid": studies[-1]["study_uid"],
                            "consortium_id": 1,
                            "site_id": site_id,
                            "tier": tier,
                            "group_id": None,
                            "state": state,
                            "priority": priority.value,
                            "priority_rank": PRIORITY_RANK[priority],
                            "deadline_at": now + dt.timedelta(minutes=rng.randint(60, 48 * 60)),
                            "modality": modality,
                            "body_part": "CHEST",
                            "route_reason": "bench filler",
                            "ai_flags": [],
                            "claimed_by": holder,
                            "claimed_at": now if holder else None,
                            "lease_expires_at": now + dt.timedelta(days=1) if holder else None,
                            "escalated_from_id": None,
                            "escalation_reason": None,
                            "new_images": False,
                            "images_seen_at": now,
                            "breached_at": None,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                connection.execute(insert(Patient), patients)
                connection.execute(insert(Study), studies)
                connection.execute(insert(ReadingTask), tasks)
                progress.advance(bar, size)
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                for table in ("patient", "study", "reading_task"):
                    connection.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                    )
            connection.execute(text("ANALYZE"))
    engine.dispose()


def measure_worklist(base: str, world: dict[str, Any], args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    names = list(world["tokens"])
    client = httpx.Client(timeout=30)
    walls, servers, rows = [], [], []
    for _ in range(5):  # warm-up
        client.get(f"{base}/api/worklist", headers={"Authorization": f"Bearer {world['tokens'][names[0]]}"})
    for _ in range(args.requests):
        name = rng.choice(names)
        began = time.perf_counter()
        answer = client.get(f"{base}/api/worklist", headers={"Authorization": f"Bearer {world['tokens'][name]}"})
        walls.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        servers.append(float(answer.headers["server-timing"].split("dur=")[1]))
        rows.append(len(answer.json()["tasks"]))
    client.close()
    return {
        "requests": args.requests,
        "p50_ms": round(percentile(walls, 50), 1),
        "p95_ms": round(percentile(walls, 95), 1),
        "server_p50_ms": round(percentile(servers, 50), 1),
        "server_p95_ms": round(percentile(servers, 95), 1),
        "rows_median": statistics.median(rows),
    }


def measure_claims(base: str, url: str, world: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    claimers = world["county"][: args.claimers]
    counts: Counter[str] = Counter()
    errors: Counter[int] = Counter()
    stop = time.monotonic() + args.seconds
    barrier = threading.Barrier(len(claimers))

    def claimer(name: str) -> None:
        client = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {world['tokens'][name]}"})
        barrier.wait()
        while time.monotonic() < stop:
            answer = client.post(f"{base}/api/worklist/next")
            if answer.status_code == 200:
                counts[name] += 1
            else:
                errors[answer.status_code] += 1
                if answer.status_code == 404:
                    break
        client.close()

    since = time.perf_counter()
    threads = [threading.Thread(target=claimer, args=(name,)) for name in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - since
    engine = create_engine(url)
    with engine.connect() as connection:
        claimed = Counter(
            row[0]
            for row in connection.execute(
                select(
                    Change.payload["task_id"].as_integer()
                    if engine.dialect.name == "postgresql"
                    else func.json_extract(Change.payload, "$.task_id")
                ).where(Change.kind == "task.claimed")
            )
        )
    engine.dispose()
    total = sum(counts.values())
    return {
        "claimers": len(claimers),
        "seconds": round(elapsed, 1),
        "claims": total,
        "claims_per_s": round(total / elapsed, 1),
        "errors": dict(errors),
        "claimed_twice": sum(1 for n in claimed.values() if n > 1),
    }


def measure_handoff(service: Service, url: str, args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    import pydicom

    from datasets import synthetic

    engine = create_engine(url)
    delays = []
    for run in range(args.handoffs):
        folder = Path(tempfile.mkdtemp(prefix="yy-handoff-"))
        paths = synthetic.write_series(synthetic.ct_series("head", 20, seed=900 + run, rows=128, cols=128), folder)
        uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
        done = subprocess.run(
            ["storescu", "-aet", "BENCH_CT", "-aec", "YUNYING", "127.0.0.1", str(service.dicom_port), *map(str, paths)],
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True,
            check=False,
        )
        sent = time.monotonic()
        if done.returncode != 0:
            raise SystemExit(f"storescu failed: {done.stderr.decode()}")
        while True:
            with engine.connect() as connection:
                if connection.execute(select(ReadingTask.id).where(ReadingTask.study_uid == uid)).first():
                    break
            if time.monotonic() - sent > 60:
                raise SystemExit("no task within 60 s; see the serve log")
            time.sleep(0.02)
        delays.append(time.monotonic() - sent - args.stability)
        shutil.rmtree(folder)
    engine.dispose()
    return {
        "runs": len(delays),
        "median_s": round(statistics.median(delays), 2),
        "max_s": round(max(delays), 2),
        "stability_s": args.stability,
        "note": "minus the stability delay; AI timeout 0.05 s",
    }


def run_index(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    home = Path(tempfile.mkdtemp(prefix=f"yy-worklist-{kind}-"))
    pg_name = None
    if kind == "postgres":
        pg_name = f"yunying_bench_{secrets.token_hex(4)}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    else:
        url = f"sqlite:///{home / 'yunying.db'}"
    try:
        upgrade(url)
        console.print(f"({kind}) {args.sites} sites, {args.readers} readers …")
        world = setup_identity(url, args, rng)
        load_tasks(url, args, world, rng)
        service = Service(home, url)
        service.env.update(
            {
                "YUNYING_STABILITY_SECONDS": str(args.stability),
                "YUNYING_STABILITY_POLL_S": "0.1",
                "YUNYING_READING_AI_TIMEOUT_S": "0.05",
                "YUNYING_READING_SWEEP_POLL_S": "0.1",
            }
        )
        with service.running():
            base = f"http://127.0.0.1:{service.http_port}"
            console.print(f"({kind}) worklist queries …")
            result = {"worklist": measure_worklist(base, world, args, rng)}
            console.print(f"({kind}) hand-off from the last image …")
            result["handoff"] = measure_handoff(service, url, args, [])
            console.print(f"({kind}) {args.claimers} claimers for {args.seconds} s …")
            result["claims"] = measure_claims(base, url, world, args)
        return result
    finally:
        if args.keep:
            console.print(f"({kind}) kept: {url} and {home}")
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
            if pg_name:
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", choices=["postgres", "sqlite", "both"], default="postgres")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--sites", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--claimers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--handoffs", type=int, default=5)
    parser.add_argument("--stability", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="keep the index and the home folder")
    args = parser.parse_args()
    kinds = ["postgres", "sqlite"] if args.index == "both" else [args.index]
    results = {
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "args": vars(args),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    for kind in kinds:
        results[kind] = run_index(kind, args)
    out = BENCH / "results" / f"worklist-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    table = Table("index", "worklist p50/p95 ms (server)", "claims/s", "claimed twice", "hand-off s (median/max)")
    for kind in kinds:
        r = results[kind]
        w, c, h = r["worklist"], r["claims"], r["handoff"]
        table.add_row(
            kind,
            f"{w['p50_ms']}/{w['p95_ms']} ({w['server_p50_ms']}/{w['server_p95_ms']})",
            f"{c['claims_per_s']} ({c['claims']} by {c['claimers']})",
            str(c["claimed_twice"]),
            f"{h['median_s']}/{h['max_s']}",
        )
    console.print(table)
    console.print(f"results: {out}")


if __name__ == "__main__":
    main()
