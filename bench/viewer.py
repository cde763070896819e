#!/usr/bin/env python
"""The browser front end, timed in Debian's Chromium (Python playwright) on loopback:

1. **Viewer**: a synthetic ``--slices``-slice ``--size``² CT sent by dcmtk ``storescu`` to a
   ``yunying`` service running in this process (AI off: the task is queued after 1 s); a county
   reader logs in through the form and claims it; then ``--runs`` times each:
   * *cold*: a fresh browser context (empty HTTP cache) opens ``/read/<task>`` — the time from
     navigation start to the first image on screen (the server's picture of the opening slice
     where the page showed one — viewer/web/src/viewer/preview.ts —, else Cornerstone's), to
     Cornerstone's first rendered image (IMAGE_RENDERED with an image: from then on the viewer
     answers), and to the whole stack in Cornerstone's cache (the prefetch after the first image);
   * *warm*: the same context opens it again (scripts from the HTTP cache; images fetched anew —
     the DICOMweb answers are not cached by the browser). Such a context lives in memory (an
     off-the-record profile), where Chromium keeps no V8 code cache: ``--warm-loads 3`` shows a
     third and fourth open no faster than the second;
   * *from worklist*: the same context shows the worklist (which fetches and starts the viewer
     while idle), then the reader clicks "open": the time from the click;
   * *warm, reader's profile*: a persistent browser profile on disk (a reader's own workstation,
     where the viewer has been opened before) opens ``/read/<task>`` three times unmeasured, then
     ``--runs`` times measured. Chromium keeps V8's compiled code of a script beside its HTTP
     cache entry only from its second load on and uses it from the third, so this is the warm
     case a reader meets after his first studies of the day; *warm* above is the second load.
2. **Worklist**: ``--tasks`` open tasks loaded into a fresh index with bench/worklist.py's bulk
   loader; one county reader logs in; the time from navigation start of ``/worklist`` to its
   rows on screen, cold and warm.

Browser and server share the machine's 2 cores. Results go to bench/results/viewer-<timestamp>.json;
docs/performance.md has the figures and this command.

    .venv/bin/python bench/viewer.py                         # 300 slices of 512², 10,000 tasks, 3 runs
    .venv/bin/python bench/viewer.py --slices 60 --tasks 1000 --runs 1
    .venv/bin/python bench/viewer.py --tasks 0 --runs 1 --trace bench/results/trace   # where the time goes
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# The project first: this file's own name would otherwise hide the `viewer` package.
sys.path.insert(0, str(ROOT))
sys.path.append(str(BENCH))

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402
from sqlalchemy import select  # noqa: E402

from ai_models.settings import AISettings  # noqa: E402
from datasets import synthetic  # noqa: E402
from pacs.identity.passwords import set_password  # noqa: E402
from pacs.identity.sites import add_site, add_site_ae  # noqa: E402
from pacs.index.db import transaction  # noqa: E402
from pacs.index.migrate import upgrade  # noqa: E402
from pacs.index.models import User  # noqa: E402
from pacs.service import Services, build_services  # noqa: E402
from pacs.settings import Settings  # noqa: E402
from reading.admin import add_reader, parse_window, set_roster  # noqa: E402
from reading.settings import ReadingSettings  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.viewer.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from viewer.frontend import DIST  # noqa: E402
from viewer.serve import EmbeddedService  # noqa: E402

console = Console()
PASSWORD = "Bench-Password-2026"


@contextmanager
def running(home: Path, database_url: str | None = None) -> Iterator[tuple[Services, Settings]]:
    settings = Settings(
        home=home,
        **({"database_url": database_url} if database_url else {}),
        dicom_host="127.0.0.1",
        dicom_port=free_port(),
        http_host="127.0.0.1",
        http_port=free_port(),
        stability_seconds=1.0,
        stability_poll_s=0.2,
        log_level="WARNING",
    )
    upgrade(settings.resolved_database_url)
    services = build_services(settings)
    service = EmbeddedService(
        services,
        ReadingSettings(reading_ai_timeout_s=1, reading_sweep_poll_s=0.2, reading_lease_s=3600),
        AISettings(in_service=False),
    )
    service.start()
    try:
        yield services, settings
    finally:
        service.stop()
        services.close()


def log_in(page: Page, login: str) -> None:
    page.goto("/login")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/worklist", timeout=30_000)


def ct_files(cache: Path, slices: int, size: int) -> list[Path]:
    folder = cache / f"ct-{slices}x{size}"
    if folder.exists() and len(list(folder.glob("*.dcm"))) == slices:
        return sorted(folder.glob("*.dcm"))
    shutil.rmtree(folder, ignore_errors=True)
    with console.status(f"writing a {slices}-slice {size}² CT (once)…"):
        series = synthetic.ct_series("abdomen", slices, seed=300, rows=size, cols=size)
        return synthetic.write_series(series, folder)


# When the viewer chunk and the first requests were fetched: [start, end] ms from navigation start
# (reversed so that the first of the 300 frame requests is the one kept).
FETCHED_JS = r"""Object.fromEntries(performance.getEntriesByType('resource')
    .filter(e => /assets\/(reading|stack)-|api\/session|api\/tasks\/\d+$|\/series$|\/metadata$/.test(e.name)
                 || /\/frames\/1(\/rendered\?.*)?$/.test(e.name))
    .map(e => [e.name.replace(
                   /^.*\/(assets\/reading|assets\/stack|api\/session|api\/tasks|series|metadata|frames\/1\/rendered|frames)\b.*$/,
                   '$1'),
               [Math.round(e.startTime), Math.round(e.responseEnd)]]).reverse())"""


# What --trace records: the main thread's tasks, V8's compiling and running of each script (on which
# thread), the network, and the page's own yy: marks.
TRACE_CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8",
    "v8.execute",
    "disabled-by-default-v8.compile",
    "blink",
    "blink.user_timing",
    "loading",
    "netlog",
]


def open_study(
    context: Any, url: str, link: tuple[float, float] | None = None, trace: Path | None = None
) -> dict[str, Any]:
    page = context.new_page()
    if link is not None:  # Chromium's own network emulation: every answer at this speed and delay
        mbps, rtt_ms = link
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": rtt_ms,
                "downloadThroughput": mbps * 1e6 / 8,
                "uploadThroughput": mbps * 1e6 / 8,
            },
        )
    if trace is not None:  # until the first image (the whole stack would make it hundreds of MB)
        context.browser.start_tracing(page=page, path=str(trace), categories=TRACE_CATEGORIES)
    page.goto(url)
    page.wait_for_function("() => window.__yyViewer && window.__yyViewer.firstImageAt !== null", timeout=120_000)
    if trace is not None:
        page.wait_for_timeout(200)
        context.browser.stop_tracing()
    page.wait_for_function("() => window.__yyViewer.allLoadedAt !== null", timeout=300_000, polling=100)
    marks: dict[str, Any] = page.evaluate(
        "() => ({ first: window.__yyViewer.firstImageAt, all: window.__yyViewer.allLoadedAt, "
        "tools: window.__yyViewer.toolsAt ?? null, "
        "renditions: [...(window.__yyViewer.fetched?.renditions.values() ?? [])], "
        "mbps: window.__yyViewer.fetched?.mbps() ?? null, "
        "script: performance.getEntriesByType('resource').filter(e => e.name.includes('/assets/reading-'))"
        ".map(e => e.duration)[0] ?? null, "
        f"fetched: {FETCHED_JS}, "
        "stages: Object.fromEntries(performance.getEntriesByType('mark').filter(m => m.name.startsWith('yy:'))"
        ".map(m => [m.name.slice(3), Math.round(m.startTime)])) })"
    )
    page.close()
    preview = marks["stages"].get("preview")
    return {
        # The first image on screen: the server's picture of the opening slice where the page
        # showed one (viewer/web/src/viewer/preview.ts), else Cornerstone's first image.
        "first_shown_ms": min(preview, marks["first"]) if preview is not None else marks["first"],
        "picture_ms": preview,  # None: none shown (Cornerstone's image came first, or none was asked for)
        "first_image_ms": marks["first"],  # Cornerstone's first image: the viewer answers from here
        "stack_loaded_ms": marks["all"],
        "tools_ready_ms": marks["tools"],  # Cornerstone's tools (a chunk loaded after the first image)
        "viewer_script_ms": marks["script"],
        "stages_ms": marks["stages"],  # performance marks of the reading page, from navigation start
        # [start, end] of the viewer chunk's and the first requests' fetches (the first frame: the
        # first one listed), ms from navigation start
        "fetched_ms": marks["fetched"],
        "renditions": marks["renditions"],  # what each series shown was fetched as
        "line_mbps": marks["mbps"],  # the line speed the page measured (None: not measurable)
    }


def open_from_worklist(context: Any, task_id: int) -> dict[str, Any]:
    """A reader's way in: the worklist shown (its idle prefetch of the viewer done), then a click."""
    page = context.new_page()
    page.goto("/worklist")
    page.wait_for_selector(f"tr[data-task='{task_id}'] button[data-action=open]", timeout=60_000)
    page.wait_for_timeout(4000)
    clicked = page.evaluate("() => performance.now()")
    page.click(f"tr[data-task='{task_id}'] button[data-action=open]")
    page.wait_for_function("() => window.__yyViewer && window.__yyViewer.firstImageAt !== null", timeout=120_000)
    page.wait_for_function("() => window.__yyViewer.allLoadedAt !== null", timeout=300_000, polling=100)
    marks: dict[str, float] = page.evaluate(
        "() => ({ first: window.__yyViewer.firstImageAt, all: window.__yyViewer.allLoadedAt })"
    )
    page.close()
    return {"first_image_ms": marks["first"] - clicked, "stack_loaded_ms": marks["all"] - clicked}


def open_in_profile(
    driver: Any, base: str, cookies: list[Any], task_id: int, runs: int, work: Path
) -> list[dict[str, Any]]:
    """The *warm, reader's profile* runs: a persistent profile that has opened the study before."""
    profile = driver.chromium.launch_persistent_context(
        str(work / "profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        base_url=base,
        viewport={"width": 1600, "height": 900},
    )
    try:
        profile.add_cookies(cookies)
        for _ in range(3):  # the reader's earlier opens: HTTP cache, then V8's code cache
            open_study(profile, f"/read/{task_id}")
        return [open_study(profile, f"/read/{task_id}") for _ in range(runs)]
    finally:
        profile.close()


def bench_viewer(driver: Any, browser: Browser, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    files = ct_files(Path(args.cache), args.slices, args.size)
    with running(work / "viewer") as (services, settings):
        with transaction(services.sessions) as session:
            site = add_site(
                session,
                consortium="Bench",
                name="Fudong",
                tier="township",
                return_ae_title="FUDONG_PACS",
                return_host="127.0.0.1",
                return_port=1,
            )
            add_site_ae(session, site=site, ae_title="FUDONG_CT", allowed_address="127.0.0.1")
            add_reader(session, username="li", consortium="Bench", tier="county", modalities=["CT"])
            set_roster(session, "li", [parse_window("daily 00:00-12:00"), parse_window("daily 12:00-00:00")])
            set_password(session, session.scalars(select(User).where(User.username == "li")).one(), PASSWORD)
        sent = subprocess.run(
            ["storescu", "-aet", "FUDONG_CT", "-aec", "YUNYING", "127.0.0.1", str(settings.dicom_port)]
            + [str(f) for f in files],
            capture_output=True,
            text=True,
            env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
            timeout=600,
        )
        assert sent.returncode == 0, sent.stderr
        base = f"http://127.0.0.1:{settings.http_port}"
        context = browser.new_context(base_url=base, viewport={"width": 1600, "height": 900})
        page = context.new_page()
        log_in(page, "li")
        task_id = None
        deadline = time.monotonic() + 120
        while task_id is None and time.monotonic() < deadline:
            tasks = page.request.get("/api/worklist").json()["tasks"]
            task_id = tasks[0]["id"] if tasks else None
            time.sleep(0.5)
        assert task_id is not None, "the study never reached the worklist"
        assert page.request.post(
            f"/api/tasks/{task_id}/claim",
            headers={"X-CSRF-Token": page.evaluate("() => fetch('/api/session').then(r => r.json())")["csrf_token"]},
        ).ok
        cookies = context.cookies()
        context.close()
        later = [f"warm, load {k}" for k in range(3, args.warm_loads + 2)]
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in ["cold", "warm", *later, "from worklist"]}
        traces = Path(args.trace) if args.trace else None
        if traces is not None:
            traces.mkdir(parents=True, exist_ok=True)
        for n in range(1, args.runs + 1):
            fresh = browser.new_context(base_url=base, viewport={"width": 1600, "height": 900})
            fresh.add_cookies(cookies)
            runs["cold"].append(open_study(fresh, f"/read/{task_id}", trace=traces and traces / f"cold-{n}.json"))
            runs["warm"].append(open_study(fresh, f"/read/{task_id}", trace=traces and traces / f"warm-{n}.json"))
            for key in later:  # Chromium keeps no V8 code cache in such an in-memory context: not faster
                runs[key].append(open_study(fresh, f"/read/{task_id}"))
            runs["from worklist"].append(open_from_worklist(fresh, task_id))
            fresh.close()
        if args.link:
            # A thin link: the same study with native frames, with HTJ2K renditions, and as the
            # page chooses from the speed it measures; a fresh context each (cold), then again in it (warm).
            link = tuple(float(v) for v in args.link.split(","))
            for mode in args.link_modes.split("/"):
                key = f"{link[0]:g} Mbit/s {link[1]:g} ms, {mode}"
                runs[key] = []
                runs[f"{key}, warm"] = []
                for _ in range(args.runs):
                    fresh = browser.new_context(base_url=base, viewport={"width": 1600, "height": 900})
                    fresh.add_cookies(cookies)
                    renditions, _, webgl = mode.partition(", ")
                    if renditions != "auto":
                        fresh.add_init_script(f"localStorage.setItem('yy.renditions', '{renditions}')")
                    if webgl:  # Cornerstone's GPU path on this software rasterizer: HTJ2K drawn coarse first
                        fresh.add_init_script("localStorage.setItem('yy.rendering', 'webgl')")
                    runs[key].append(open_study(fresh, f"/read/{task_id}", (link[0], link[1])))
                    # Again in the same context: the scripts from the cache, the images over the line.
                    runs[f"{key}, warm"].append(open_study(fresh, f"/read/{task_id}", (link[0], link[1])))
                    fresh.close()
            return {"slices": args.slices, "size": args.size, "runs": runs}
        runs["warm, reader's profile"] = open_in_profile(driver, base, cookies, task_id, args.runs, work)
    return {"slices": args.slices, "size": args.size, "runs": runs}


def bench_worklist(browser: Browser, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / "worklist"
    home.mkdir(parents=True)
    url = f"sqlite:///{home / 'yunying.db'}"
    upgrade(url)
    # Imported here: bench/worklist.py puts bench/ first on sys.path, where this file would pass
    # for the `viewer` package had that not been imported already.
    worklist = importlib.import_module("worklist")
    load_tasks, setup_identity = worklist.load_tasks, worklist.setup_identity
    loader = argparse.Namespace(sites=12, readers=20, tasks=args.tasks)
    world = setup_identity(url, loader, random.Random(7))
    load_tasks(url, loader, world, random.Random(7))
    reader = world["county"][0]
    with running(home, url) as (services, _settings):
        with transaction(services.sessions) as session:
            set_password(session, session.scalars(select(User).where(User.username == reader)).one(), PASSWORD)
        base = f"http://127.0.0.1:{services.settings.http_port}"
        context = browser.new_context(base_url=base, viewport={"width": 1600, "height": 900})
        log_in(context.new_page(), reader)
        cookies = context.cookies()
        context.close()
        runs: dict[str, list[float]] = {"cold": [], "warm": []}
        for _ in range(args.runs):
            fresh = browser.new_context(base_url=base, viewport={"width": 1600, "height": 900})
            fresh.add_cookies(cookies)
            for kind in ("cold", "warm"):
                page = fresh.new_page()
                page.goto("/worklist")
                page.wait_for_selector("#worklist-rows tr[data-task]", timeout=60_000)
                runs[kind].append(page.evaluate("() => performance.now()"))
                rows = page.locator("#worklist-rows tr[data-task]").count()
                page.close()
            fresh.close()
    return {"tasks": args.tasks, "rows_shown": rows, "reader": reader, "runs_ms": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tasks", type=int, default=10_000, help="0: skip the worklist")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--link",
        help="MBITS,RTT_MS: after the loopback runs, open the study over an emulated line of this speed and "
        "round trip, with native frames, HTJ2K renditions and the page's own choice, and the first two with "
        "WebGL kept on (e.g. 4,100)",
    )
    parser.add_argument(
        "--link-modes",
        default="native/htj2k/auto/native, webgl/htj2k, webgl",
        help="with --link: the ways to open the study over it, separated by '/' (default: all five)",
    )
    parser.add_argument(
        "--trace",
        metavar="DIR",
        help="write a Chromium trace of each cold and warm open, up to its first image, to DIR/cold-N.json and "
        "DIR/warm-N.json (open them in https://ui.perfetto.dev or chrome://tracing); the figures are then slower",
    )
    parser.add_argument(
        "--warm-loads",
        type=int,
        default=1,
        help="opens of the study in the same context after the cold one (default 1: the 'warm' row); "
        "more add 'warm, load 3', … rows",
    )
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "yunying-bench-data"))
    args = parser.parse_args()
    if args.warm_loads < 1:
        parser.error("--warm-loads: at least 1")
    for mode in args.link_modes.split("/"):
        renditions, _, rendering = mode.partition(", ")
        if renditions not in ("native", "htj2k", "auto") or rendering not in ("", "webgl"):
            parser.error(f"--link-modes: {mode!r} is not native|htj2k|auto, optionally followed by ', webgl'")
    if not (DIST / "index.html").exists():
        sys.exit("build the front end first: make web")
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-viewer-"))
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            result = {
                "when": dt.datetime.now(dt.UTC).isoformat(),
                "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                "chromium": browser.version,
                "viewer": bench_viewer(driver, browser, args, work),
                "worklist": bench_worklist(browser, args, work) if args.tasks else None,
            }
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"viewer: {args.slices} slices of {args.size}², medians of {args.runs}")
    table.add_column("cache")
    table.add_column("first on screen ms", justify="right")
    table.add_column("pictures", justify="right")
    table.add_column("Cornerstone's first ms", justify="right")
    table.add_column("whole stack ms", justify="right")
    table.add_column("viewer script ms", justify="right")
    for kind, runs in result["viewer"]["runs"].items():
        table.add_row(
            kind,
            f"{statistics.median(r.get('first_shown_ms', r['first_image_ms']) for r in runs):.0f}",
            f"{sum(1 for r in runs if r.get('picture_ms') is not None)}/{len(runs)}",
            f"{statistics.median(r['first_image_ms'] for r in runs):.0f}",
            f"{statistics.median(r['stack_loaded_ms'] for r in runs):.0f}",
            f"{statistics.median(r.get('viewer_script_ms') or 0 for r in runs):.0f}",
        )
    console.print(table)
    for kind, values in (result["worklist"] or {"runs_ms": {}})["runs_ms"].items():
        console.print(f"worklist with {args.tasks} open tasks, {kind}: {statistics.median(values):.0f} ms to rows")
    out = BENCH / "results" / f"viewer-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
