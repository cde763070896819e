#!/usr/bin/env python
"""The clinic edge over a thin rural line (issue H): a CT pushed by dcmtk ``storescu`` to a real
``yunying edge serve``, forwarded to the centre (receiver + web in this process) through a
test-owned proxy playing the line — 2 Mbit/s, 200 ms round trip, 3 % "loss" (retransmission
delays, tests/tcp_proxy.py), and an outage in the middle — compared with ``storescu`` sending
straight to the centre over the same line.

    .venv/bin/python bench/edge.py                          # 300 × 512² CT, 60 s outage (≈ 25 min)
    .venv/bin/python bench/edge.py --size 256 --outage 60   # 300 × 256²: the figures of docs/edge.md

Runs: (1) edge, no outage; (2) edge, outage; (3) storescu direct, no outage; (4) storescu
direct, outage — it fails at the cut, and a technologist sends the whole study again; and, asked
for by name, (5) ``edge-compressed`` / (6) ``edge-compressed-outage``: the edge with
``YUNYING_EDGE_TRANSIT_COMPRESSION=jpeg-ls`` over the same line. Each run prints the bytes that
crossed the line towards the centre (DICOM and HTTP, as the proxy counted them).

    .venv/bin/python bench/edge.py --size 256 --outage 0 --runs edge,edge-compressed

Printed, and written to bench/results/edge-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ai_models.settings import AISettings  # noqa: E402
from datasets import synthetic  # noqa: E402
from pacs.identity.sites import add_site, add_site_ae  # noqa: E402
from pacs.identity.users import add_user, create_token, find_user  # noqa: E402
from pacs.index.db import transaction  # noqa: E402
from pacs.index.migrate import upgrade  # noqa: E402
from pacs.index.models import Instance, Series, Study, StudyState  # noqa: E402
from pacs.service import build_services  # noqa: E402
from pacs.settings import Settings  # noqa: E402
from reading.settings import ReadingSettings  # noqa: E402
from tests.conftest import free_port, wait_for  # noqa: E402
from tests.tcp_proxy import LinkShape, TcpProxy  # noqa: E402
from viewer.serve import EmbeddedService  # noqa: E402

YUNYING = Path(sys.executable).parent / "yunying"


class Centre:
    def __init__(self, home: Path) -> None:
        settings = Settings(
            home=home,
            dicom_host="127.0.0.1",
            dicom_port=free_port(),
            http_port=free_port(),
            stability_seconds=5.0,
            stability_poll_s=0.5,
            dimse_timeout_s=60,
            network_timeout_s=60,
            socket_idle_timeout_s=60,
            pdu_deadline_s=120,
        )
        upgrade(settings.resolved_database_url)
        self.services = build_services(settings)
        with transaction(self.services.sessions) as session:
            site = add_site(session, consortium="Dongtai", name="Fudong", tier="township")
            site.held_for_manifest = True
            add_site_ae(session, site=site, ae_title="FUDONG_EDGE", allowed_address="127.0.0.1")
            direct = add_site(session, consortium="Dongtai", name="Fudong-direct", tier="township")
            add_site_ae(session, site=direct, ae_title="FUDONG_CT", allowed_address="127.0.0.1")
            add_user(session, username="fudong-edge", role="site", site="Fudong", is_service=True)
            self.token = create_token(session, find_user(session, "fudong-edge"))[1]
        self.service = EmbeddedService(self.services, ReadingSettings(), AISettings(in_service=False))
        self.service.start()

    def count(self, study_uid: str) -> int:
        with transaction(self.services.sessions, read_only=True) as session:
            return len(
                session.scalars(
                    Instance.__table__.select()
                    .join(Series.__table__, Series.id == Instance.series_pk)
                    .join(Study.__table__, Study.id == Series.study_pk)
                    .where(Study.study_uid == study_uid, Instance.is_current.is_(True))
                ).all()
            )

    def stable(self, study_uid: str) -> bool:
        with transaction(self.services.sessions, read_only=True) as session:
            study = session.query(Study).filter_by(study_uid=study_uid).one_or_none()
            return study is not None and study.state == StudyState.STABLE

    def stop(self) -> None:
        self.service.stop()
        self.services.close()


def make_ct(folder: Path, slices: int, size: int, seed: int) -> tuple[list[Path], str]:
    import pydicom

    files = synthetic.write_series(synthetic.ct_series("abdomen", slices, seed=seed, rows=size, cols=size), folder)
    return files, str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def storescu(port: int, files: list[Path], calling: str, called: str) -> tuple[int, float]:
    started = time.monotonic()
    done = subprocess.run(
        [
            "storescu",
            "-v",
            "-aet",
            calling,
            "-aec",
            called,
            "-to",
            "60",
            "-ta",
            "60",
            "-td",
            "60",
            "127.0.0.1",
            str(port),
        ]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    return (done.stdout + done.stderr).count("Received Store Response (Success)"), time.monotonic() - started


def outage_when(centre: Centre, study_uid: str, at: int, proxies: list[TcpProxy], outage_s: float) -> threading.Thread:
    def run() -> None:
        wait_for(lambda: centre.count(study_uid) >= at, timeout=3600, interval=0.1)
        for proxy in proxies:
            proxy.cut()
        time.sleep(outage_s)
        for proxy in proxies:
            proxy.restore()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_edge(
    centre: Centre,
    work: Path,
    shape: LinkShape,
    slices: int,
    size: int,
    outage_s: float,
    seed: int,
    associations: int = 2,
    compression: str = "none",
) -> dict[str, Any]:
    files, study_uid = make_ct(work / f"ct-{seed}", slices, size, seed)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    proxies = [
        TcpProxy(("127.0.0.1", centre.services.settings.dicom_port), shape).start(),
        TcpProxy(("127.0.0.1", centre.services.settings.http_port), shape).start(),
    ]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNYING_")}
    env.update(
        {
            "YUNYING_EDGE_HOME": str(work / f"edge-{seed}"),
            "YUNYING_EDGE_SITE_NAME": "Fudong",
            "YUNYING_EDGE_AE_TITLE": "FUDONG_EDGE",
            "YUNYING_EDGE_DICOM_HOST": "127.0.0.1",
            "YUNYING_EDGE_DICOM_PORT": str(port),
            "YUNYING_EDGE_MODALITIES": json.dumps(["FUDONG_CT@127.0.0.1"]),
            "YUNYING_EDGE_STABILITY_SECONDS": "5",
            "YUNYING_EDGE_CENTRE_PORT": str(proxies[0].port),
            "YUNYING_EDGE_CENTRE_URL": f"http://127.0.0.1:{proxies[1].port}",
            "YUNYING_EDGE_SITE_TOKEN": centre.token,
            "YUNYING_EDGE_RETRY_INITIAL_S": "1",
            "YUNYING_EDGE_RETRY_MAX_S": "10",
            "YUNYING_EDGE_STATUS_PORT": "0",
            "YUNYING_EDGE_LOG_LEVEL": "WARNING",
            "YUNYING_EDGE_ASSOCIATIONS": str(associations),
            "YUNYING_EDGE_TRANSIT_COMPRESSION": compression,
        }
    )
    log = open(work / f"edge-{seed}.log", "ab")
    edge = subprocess.Popen([str(YUNYING), "edge", "serve"], env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout=120, interval=0.25)
        started = time.monotonic()
        if outage_s:
            outage_when(centre, study_uid, slices // 2, proxies, outage_s)
        ok, modality_s = storescu(port, files, "FUDONG_CT", "FUDONG_EDGE")
        wait_for(lambda: centre.count(study_uid) == slices, timeout=7200, interval=0.2)
        complete_s = time.monotonic() - started
        wait_for(lambda: centre.stable(study_uid), timeout=600, interval=0.2)
        stable_s = time.monotonic() - started
        label = f"edge ×{associations}" + (", jpeg-ls" if compression != "none" else "")
        return {
            "run": label + (", outage" if outage_s else ""),
            "instances": slices,
            "megabytes": round(megabytes, 1),
            "modality_success": ok,
            "modality_s": round(modality_s, 1),
            "complete_at_centre_s": round(complete_s, 1),
            "stable_at_centre_s": round(stable_s, 1),
            "at_centre": centre.count(study_uid),
            "effective_mbit_s": round(megabytes * 8 / complete_s, 2),
            "wire_megabytes": round(sum(p.bytes_up for p in proxies) / 1e6, 1),
            "outage_s": outage_s,
            "technologist_resends": 0,
        }
    finally:
        edge.terminate()
        edge.wait(30)
        log.close()
        for proxy in proxies:
            proxy.close()


def run_direct(
    centre: Centre, work: Path, shape: LinkShape, slices: int, size: int, outage_s: float, seed: int
) -> dict[str, Any]:
    files, study_uid = make_ct(work / f"ct-{seed}", slices, size, seed)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    proxy = TcpProxy(("127.0.0.1", centre.services.settings.dicom_port), shape).start()
    try:
        started = time.monotonic()
        outage = outage_when(centre, study_uid, slices // 2, [proxy], outage_s) if outage_s else None
        ok, _ = storescu(proxy.port, files, "FUDONG_CT", centre.services.settings.ae_title)
        resends = 0
        while ok < slices and resends < 5:  # the technologist sends the whole study again
            if outage is not None:
                outage.join()
            resends += 1
            ok, _ = storescu(proxy.port, files, "FUDONG_CT", centre.services.settings.ae_title)
        complete_s = time.monotonic() - started
        return {
            "run": f"storescu direct{', outage' if outage_s else ''}",
            "instances": slices,
            "megabytes": round(megabytes, 1),
            "modality_success": ok,
            "modality_s": round(complete_s, 1),
            "complete_at_centre_s": round(complete_s, 1),
            "at_centre": centre.count(study_uid),
            "effective_mbit_s": round(megabytes * 8 / complete_s, 2),
            "wire_megabytes": round(proxy.bytes_up / 1e6, 1),
            "outage_s": outage_s,
            "technologist_resends": resends,
        }
    finally:
        proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the line is down, mid-study")
    parser.add_argument("--rate", type=int, default=2000, help="kbit/s each way")
    parser.add_argument("--rtt", type=float, default=0.2, help="round trip, seconds")
    parser.add_argument("--loss", type=float, default=0.03)
    parser.add_argument("--runs", default="edge,edge-outage,direct,direct-outage")
    parser.add_argument("--associations", type=int, default=2, help="YUNYING_EDGE_ASSOCIATIONS")
    args = parser.parse_args()
    shape = LinkShape(latency_s=args.rtt / 2, rate_kbps=args.rate, loss=args.loss, rto_s=0.3, seed=1)
    with tempfile.TemporaryDirectory(prefix="yunying-edge-bench-") as folder:
        work = Path(folder)
        centre = Centre(work / "centre")
        results = []
        try:
            for seed, name in enumerate(args.runs.split(","), start=100):
                outage = args.outage if name.endswith("outage") else 0.0
                compression = "jpeg-ls" if name.startswith("edge-compressed") else "none"
                runner = (
                    partial(run_edge, associations=args.associations, compression=compression)
                    if name.startswith("edge")
                    else run_direct
                )
                line = f"{args.rate} kbit/s, {args.rtt * 1000:.0f} ms, {args.loss:.0%} loss, outage {outage:.0f} s"
                print(f"… {name}: {args.slices} × {args.size}² over {line}", flush=True)
                result = runner(centre, work, shape, args.slices, args.size, outage, seed)
                results.append(result)
                print(json.dumps(result, ensure_ascii=False), flush=True)
        finally:
            centre.stop()
    out = ROOT / "bench" / "results" / f"edge-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(
        f"\n{'run':32} {'MB':>6} {'wire MB':>7} {'modality s':>10} {'complete s':>10} {'stable s':>8} "
        f"{'Mbit/s':>7} {'resends':>7}"
    )
    for r in results:
        figures = f"{r['modality_s']:10.1f} {r['complete_at_centre_s']:10.1f} {r.get('stable_at_centre_s', 0):8.1f}"
        print(
            f"{r['run']:32} {r['megabytes']:6.1f} {r['wire_megabytes']:7.1f} {figures} "
            f"{r['effective_mbit_s']:7.2f} {r['technologist_resends']:7}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
