#!/usr/bin/env python
"""AI pre-screen latency, throughput and memory, through the real worker.

An embedded index (SQLite + folder in a temporary directory) with one site; studies generated
with ``datasets/lesions.py`` and ingested through ``pacs``; the in-process ``AiWorker`` with
the shipped registry (image QC, head-ct-ich, chest-dx-triage) and its model child process on
``--threads`` torch threads. For each kind of study:

* latency: one study at a time is made stable (which queues its ``ai.prescreen`` job) and
  timed until its ``study.ready_for_reading`` change — reading the images back through pacs,
  QC, the model, the SR and heat maps ingested back, the hand-off; p50/p95 over ``--runs``
  studies (half with a finding, half without), plus each model's own seconds (``ai.done``);
* throughput: ``--runs`` studies made stable together, studies per minute for one worker;
* memory: the peak resident set (VmHWM) of this process (index, pacs reads, results) and of
  the model process.

The first study of the run (torch import and weights load in the model process) is reported
as the cold start and left out of the percentiles.

    .venv/bin/python bench/ai.py                        # 300-slice head CT and 2048² chest DX
    .venv/bin/python bench/ai.py --ct-slices 40 --runs 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from dicomweb import percentile  # noqa: E402
from sqlalchemy import select  # noqa: E402

from ai_models.registry import Registry  # noqa: E402
from ai_models.settings import AISettings  # noqa: E402
from ai_models.worker import AiWorker  # noqa: E402
from datasets.lesions import chest_film, head_ct  # noqa: E402
from datasets.synthetic import write_series  # noqa: E402
from pacs.identity.sites import add_site  # noqa: E402
from pacs.index.db import transaction  # noqa: E402
from pacs.index.migrate import upgrade  # noqa: E402
from pacs.index.models import Change  # noqa: E402
from pacs.ingest import Origin  # noqa: E402
from pacs.service import build_services  # noqa: E402
from pacs.settings import Settings  # noqa: E402
from pacs.stability import mark_stable_studies  # noqa: E402

console = Console()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Bench:
    def __init__(self, home: Path, threads: int) -> None:
        settings = Settings(home=home, dicom_port=0, stability_seconds=1.0)
        upgrade(settings.resolved_database_url)
        self.services = build_services(settings)
        with transaction(self.services.sessions) as session:
            self.site_id = add_site(session, consortium="Bench", name="Bench", tier="township").id
        ai = AISettings(threads=threads, model_timeout_s=300, lease_s=600, poll_s=0.02)
        self.worker = AiWorker(self.services, ai, Registry.from_file())
        self.worker.start()
        self.home = home

    def ingest(self, name: str, datasets: list[Any]) -> str:
        folder = self.home / "in" / name
        paths = write_series(datasets, folder)
        origin = Origin(site_id=self.site_id, calling_ae="BENCH_CT", source_address="127.0.0.1")
        for path in paths:
            outcome = self.services.ingest.receive(path, origin)
            assert outcome.accepted, outcome
            path.unlink()
        return str(datasets[0].StudyInstanceUID)

    def changes(self, study_uid: str) -> list[tuple[str, dict[str, Any]]]:
        with transaction(self.services.sessions, read_only=True) as session:
            rows = session.execute(select(Change.kind, Change.payload).where(Change.study_uid == study_uid)).all()
        return [(kind, payload or {}) for kind, payload in rows]

    def wait_ready(self, uids: list[str], timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(uids)
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} studies not pre-screened after {timeout} s")
            waiting = {u for u in waiting if not any(k == "study.ready_for_reading" for k, _ in self.changes(u))}
            time.sleep(0.02)

    def stable_now(self) -> None:
        mark_stable_studies(self.services.sessions, timedelta(0))

    def model_seconds(self, uid: str) -> dict[str, float]:
        return {p["model"]: float(p["seconds"]) for k, p in self.changes(uid) if k == "ai.done" and "seconds" in p}

    def close(self) -> None:
        self.worker.stop()
        self.services.close()


def generate(kind: str, n: int, slices: int, size: int) -> list[Any]:
    seed = 990_000 + n + (0 if kind == "ct" else 500)
    if kind == "ct":
        return head_ct(seed=seed, haemorrhage=n % 2 == 0, slices=slices).slices
    return [chest_film(seed=seed, labels=["pneumothorax"] if n % 2 == 0 else [], size=size).dataset]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct-slices", type=int, default=300)
    parser.add_argument("--film-size", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=6, help="studies of each kind timed one at a time (and together)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the model process")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "args": vars(args),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory(prefix="yunying-bench-ai-") as tmp:
        bench = Bench(Path(tmp), args.threads)
        try:
            # Cold start: the model process imports torch and loads each model's weights once.
            started = time.perf_counter()
            warm = [
                bench.ingest("warm-ct", generate("ct", 99, 24, 0)),
                bench.ingest("warm-dx", generate("dx", 99, 0, 512)),
            ]
            bench.stable_now()
            bench.wait_ready(warm)
            results["cold_start_s"] = round(time.perf_counter() - started, 2)
            for kind, label in (("ct", f"head CT {args.ct_slices}×512²"), ("dx", f"chest DX {args.film_size}²")):
                latencies, models = [], []
                with Progress(console=console, transient=True) as progress:
                    task = progress.add_task(f"{label}: one at a time", total=args.runs)
                    for n in range(args.runs):
                        uid = bench.ingest(f"{kind}-{n}", generate(kind, n, args.ct_slices, args.film_size))
                        started = time.perf_counter()
                        bench.stable_now()
                        bench.wait_ready([uid])
                        latencies.append(time.perf_counter() - started)
                        models.append(bench.model_seconds(uid))
                        progress.advance(task)
                    uids = [
                        bench.ingest(f"{kind}-batch-{n}", generate(kind, 100 + n, args.ct_slices, args.film_size))
                        for n in range(args.runs)
                    ]
                    started = time.perf_counter()
                    bench.stable_now()
                    bench.wait_ready(uids)
                    batch = time.perf_counter() - started
                names = sorted({name for m in models for name in m})
                results[kind] = {
                    "study": label,
                    "latency_s": {
                        "p50": round(percentile(latencies, 50), 3),
                        "p95": round(percentile(latencies, 95), 3),
                        "all": [round(v, 3) for v in latencies],
                    },
                    "model_s": {name: round(statistics.median(m.get(name, 0.0) for m in models), 3) for name in names},
                    "studies_per_minute": round(60 * args.runs / batch, 1),
                }
            child = bench.worker.runner._child
            results["peak_rss_mib"] = {
                "worker_process": round(peak_rss_mib(os.getpid()), 1),
                "model_process": round(peak_rss_mib(child.process.pid), 1) if child is not None else None,
            }
        finally:
            bench.close()

    table = Table("study", "latency p50", "p95", "per model (median s)", "studies/min (1 worker)")
    for kind in ("ct", "dx"):
        r = results[kind]
        table.add_row(
            r["study"],
            f"{r['latency_s']['p50']:.2f} s",
            f"{r['latency_s']['p95']:.2f} s",
            ", ".join(f"{k} {v:.2f}" for k, v in r["model_s"].items()),
            f"{r['studies_per_minute']:.1f}",
        )
    console.print(table)
    console.print(
        f"cold start (torch import, weights): {results['cold_start_s']} s; peak RSS MiB: {results['peak_rss_mib']}"
    )
    out = BENCH / "results" / f"ai-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
