#!/usr/bin/env python
"""STOW-RS benchmark: one request of N synthetic 512×512 CT slices, sent by httpx from disk
(a generator: the client holds one chunk at a time) to the web application served by uvicorn
in this process over loopback, embedded shape (SQLite + folder store) in a temp home.

Prints per run: images/s and MB/s (MB = 10^6 bytes of Part-10 files; wall time from the first
byte sent to the answer), and the growth of this process's peak RSS (ru_maxrss) over the run —
the figure that shows whether a body is ever held in memory. Every run is checked: answer 200
with N referenced instances. Never fails on a number.

    .venv/bin/python bench/stow.py --slices 100 --runs 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn

from datasets import synthetic
from pacs.identity.sites import add_site, add_site_ae
from pacs.identity.users import add_user, create_token
from pacs.index.db import transaction
from pacs.index.migrate import upgrade
from pacs.service import build_services
from pacs.settings import Settings
from viewer.app import create_app

BOUNDARY = "bench-stow"


def body(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 16):
                yield chunk
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yunying-bench-stow-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home / "var", log_level="WARNING")
        upgrade(settings.resolved_database_url)
        services = build_services(settings)
        with transaction(services.sessions) as session:
            site = add_site(session, consortium="Bench", name="Bench Centre", tier="township")
            add_site_ae(session, site=site, ae_title="BENCH_CT", allowed_address="127.0.0.1")
            token = create_token(session, add_user(session, username="bench", role="site", site="Bench Centre"))[1]
        server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/dicomweb/studies"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        }
        rates = []
        for run in range(options.runs):
            folder = home / f"study{run}"
            folder.mkdir()
            series = synthetic.ct_series("abdomen", options.slices, seed=1000 + run, rows=512, cols=512)
            paths = synthetic.write_series(series, folder)  # type: ignore[arg-type]
            size = sum(path.stat().st_size for path in paths)
            peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            answer = httpx.post(url, content=body(paths), headers=headers, timeout=600)
            elapsed = time.perf_counter() - started
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
            stored = len(answer.json().get("00081199", {}).get("Value", []))
            assert answer.status_code == 200 and stored == options.slices, (answer.status_code, stored)
            rates.append(options.slices / elapsed)
            print(
                f"run {run + 1}: {options.slices} images, {size / 1e6:.1f} MB in {elapsed:.2f} s: "
                f"{options.slices / elapsed:.1f} images/s, {size / 1e6 / elapsed:.1f} MB/s; "
                f"peak RSS grew {grown / 1024:.1f} MiB"
            )
        print(f"median {statistics.median(rates):.1f} images/s over {options.runs} runs")
        server.should_exit = True
        thread.join(10)
        services.close()


if __name__ == "__main__":
    main()
