#!/usr/bin/env python
"""WADO-RS frames without a browser: what the server costs per frame of a reading.

A synthetic ``--slices``-slice ``--size``² CT is ingested into a ``yunying`` service running in
this process (SQLite + folder, as ``yunying demo``; AI off); a reader logs in with a password
(``POST /api/session``: the browser's session cookie, as the viewer sends it). Then ``--runs``
times each:

* *sequential*: every slice's frame 1 fetched one after another (one keep-alive connection);
* *6 at a time*: the same, six requests in flight (a browser's connections per host).

The frames are asked for as the viewer asks (``multipart/related; type=application/octet-stream;
transfer-syntax=*``). Then the stages of one frame request, timed in process ``--runs`` × the
slice count: the session cookie's check (``resolve_session`` in its read transaction, as
``pacs.dicomweb.auth``), the instance lookup with its frame layout (the route's read
transaction), the frame's bytes (``stored_frames``) and a trivial route over HTTP (``/healthz``).

Server and client share the machine's cores; the load average is printed with the figures
(docs/performance.md has them and this command). To time another checkout's server code with
this script, put that checkout first: ``PYTHONPATH=/path/to/checkout``.

    PYTHONPATH=. .venv/bin/python bench/frames.py                 # 300 slices of 512², 3 runs
    PYTHONPATH=. .venv/bin/python bench/frames.py --slices 60 --runs 1
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

# This folder's bench/viewer.py would hide the `viewer` package: take it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import structlog  # noqa: E402
from sqlalchemy import select  # noqa: E402

from ai_models.settings import AISettings  # noqa: E402
from datasets import synthetic  # noqa: E402
from pacs import dicomweb  # noqa: E402
from pacs.dicomweb import retrieve  # noqa: E402
from pacs.dicomweb.auth import SESSION_COOKIE, session_policy  # noqa: E402
from pacs.identity.passwords import set_password  # noqa: E402
from pacs.identity.sessions import resolve_session  # noqa: E402
from pacs.identity.sites import add_site  # noqa: E402
from pacs.identity.users import Scope  # noqa: E402
from pacs.index.db import transaction  # noqa: E402
from pacs.index.migrate import upgrade  # noqa: E402
from pacs.index.models import Instance, Series, Study, User  # noqa: E402
from pacs.ingest import Origin  # noqa: E402
from pacs.pixels import stored_frames  # noqa: E402
from pacs.service import Services, build_services  # noqa: E402
from pacs.settings import Settings  # noqa: E402
from reading.admin import add_reader, parse_window, set_roster  # noqa: E402
from reading.settings import ReadingSettings  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from viewer.serve import EmbeddedService  # noqa: E402

PASSWORD = "Bench-Password-2026"
ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@contextmanager
def running(home: Path) -> Iterator[tuple[Services, str]]:
    settings = Settings(
        home=home,
        dicom_host="127.0.0.1",
        dicom_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        log_level="WARNING",
    )
    upgrade(settings.resolved_database_url)
    services = build_services(settings)
    service = EmbeddedService(services, ReadingSettings(reading_ai_timeout_s=1), AISettings(in_service=False))
    service.start()
    try:
        yield services, f"http://127.0.0.1:{settings.http_port}"
    finally:
        service.stop()
        services.close()


def ct_files(cache: Path, slices: int, size: int) -> list[Path]:
    folder = cache / f"ct-{slices}x{size}"
    if folder.exists() and len(list(folder.glob("*.dcm"))) == slices:
        return sorted(folder.glob("*.dcm"))
    shutil.rmtree(folder, ignore_errors=True)
    print(f"writing a {slices}-slice {size}² CT (once, into {folder})…", flush=True)
    return synthetic.write_series(synthetic.ct_series("abdomen", slices, seed=300, rows=size, cols=size), folder)


def frame_paths(services: Services) -> list[tuple[str, str, str]]:
    with transaction(services.sessions, read_only=True) as session:
        rows = session.execute(
            select(Study.study_uid, Series.series_uid, Instance.sop_instance_uid)
            .join(Series, Series.study_pk == Study.id)
            .join(Instance, Instance.series_pk == Series.id)
            .where(Instance.is_current.is_(True))
            .order_by(Instance.instance_number)
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def fetch_all(client: httpx.Client, paths: list[tuple[str, str, str]], parallel: int) -> float:
    def one(path: tuple[str, str, str]) -> None:
        study, series, sop = path
        answer = client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1")
        assert answer.status_code == 200, answer.text[:300]

    start = time.perf_counter()
    if parallel == 1:
        for path in paths:
            one(path)
    else:
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(one, paths))
    return time.perf_counter() - start


def per_call_ms(work: Callable[[], Any], times: int) -> list[float]:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        work()
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def lookup(services: Services, scope: Scope, path: tuple[str, str, str]) -> Callable[[], Any]:
    """The route's instance lookup and frame layout, in its one read transaction — as this
    checkout's code does it (one query since ``locate_frames``; before it, two)."""

    def work() -> Any:
        with transaction(services.sessions, read_only=True) as session:
            if hasattr(retrieve, "locate_frames"):
                return retrieve.locate_frames(session, scope, *path)
            item = retrieve.locate(session, scope, *path)[0]
            return item, retrieve.frame_layout(session, item)

    return work


def shared(services: Services, secret: str, policy: Any, path: tuple[str, str, str]) -> Callable[[], Any]:
    """The session check and the instance lookup in one read transaction: not what the server
    does (each has its own), timed to size what sharing would save."""

    def work() -> Any:
        with transaction(services.sessions, read_only=True) as session:
            found = resolve_session(session, secret, policy=policy)
            assert found is not None
            if hasattr(retrieve, "locate_frames"):
                return retrieve.locate_frames(session, found.principal.scope, *path)
            item = retrieve.locate(session, found.principal.scope, *path)[0]
            return item, retrieve.frame_layout(session, item)

    return work


def describe(label: str, values: list[float], unit: str) -> None:
    low, high = min(values), max(values)
    print(f"  {label:<46} median {statistics.median(values):7.1f} {unit}  ({low:.1f}–{high:.1f}, n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "yunying-bench-cache"))
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    print(f"server code: {Path(dicomweb.__file__).resolve().parent.parent.parent}")
    files = ct_files(Path(args.cache), args.slices, args.size)
    work = Path(tempfile.mkdtemp(prefix="yunying-frames-"))
    try:
        with running(work / "var") as (services, base):
            with transaction(services.sessions) as session:
                site = add_site(session, consortium="Bench", name="Fudong", tier="township")
                add_reader(session, username="li", consortium="Bench", tier="county", modalities=["CT"])
                set_roster(session, "li", [parse_window("daily 00:00-12:00"), parse_window("daily 12:00-00:00")])
                set_password(session, session.scalars(select(User).where(User.username == "li")).one(), PASSWORD)
                site_id = site.id
            origin = Origin(site_id=site_id, calling_ae="FUDONG_CT", source_address="127.0.0.1")
            for path in files:
                services.ingest.receive(path, origin)
            paths = frame_paths(services)
            assert len(paths) == args.slices, f"{len(paths)} instances indexed of {args.slices}"
            limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)
            with httpx.Client(base_url=base, limits=limits, timeout=120, headers={"Accept": ACCEPT}) as client:
                logged_in = client.post("/api/session", json={"login": "li", "password": PASSWORD})
                assert logged_in.status_code == 200, logged_in.text
                secret = client.cookies[SESSION_COOKIE]
                fetch_all(client, paths[:10], 1)  # warm-up
                load_before = os.getloadavg()
                sequential = [fetch_all(client, paths, 1) for _ in range(args.runs)]
                parallel = [fetch_all(client, paths, 6) for _ in range(args.runs)]
                health = per_call_ms(lambda: client.get("/healthz").raise_for_status(), args.slices)
            policy = session_policy(services.settings)

            def check() -> Any:
                with transaction(services.sessions, read_only=True) as session:
                    found = resolve_session(session, secret, policy=policy)
                assert found is not None
                return found.principal

            scope = check().scope
            # The stages taken in turn, one frame after another, so that the machine's load
            # (shared with other work) weighs on each alike.
            stages: dict[str, list[float]] = {"check": [], "lookup": [], "shared": [], "bytes": []}
            for i in range(args.slices * args.runs):
                path = paths[i % len(paths)]
                stages["check"] += per_call_ms(check, 1)
                stages["lookup"] += per_call_ms(lookup(services, scope, path), 1)
                stages["shared"] += per_call_ms(shared(services, secret, policy, path), 1)
                item, header = lookup(services, scope, path)()
                read = partial(stored_frames, services.store, item.stored, header, [1])
                stages["bytes"] += per_call_ms(read, 1)
            load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.slices} frames of a {args.slices}-slice {args.size}² CT, {args.runs} runs, {os.cpu_count()} cores")
    print(
        f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
        f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}"
    )
    print("over HTTP (wall time for all frames):")
    describe(f"{args.slices} frame GETs one after another", sequential, "s")
    describe(f"{args.slices} frame GETs 6 at a time", parallel, "s")
    print("per frame, in process:")
    describe("session cookie check (resolve_session, 1 txn)", stages["check"], "ms")
    describe("instance lookup + frame layout (its txn)", stages["lookup"], "ms")
    describe("both in one txn (not done; what sharing saves)", stages["shared"], "ms")
    describe("frame bytes (stored_frames)", stages["bytes"], "ms")
    describe("GET /healthz over HTTP", health, "ms")


if __name__ == "__main__":
    main()
