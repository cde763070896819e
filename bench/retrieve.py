#!/usr/bin/env python
"""C-MOVE and C-FIND throughput of the receiver's Q/R SCP, with dcmtk as the peers.

Runs the real ``pacs.dimse.receiver.Receiver`` in this process on SQLite + folder, stores one
synthetic 100-slice 512×512 CT (``storescu``), configures a DICOM node, then times ``movescu``
moving the study to a dcmtk ``storescp`` — once with the destination's TCP_NODELAY off (dcmtk's
default) and once on (our side always sets it) — and ``findscu`` answering 100 IMAGE-level
matches. Prints images/s, median (min–max) over ``--runs``. See docs/performance.md.

    PYTHONPATH=. .venv/bin/python bench/retrieve.py --runs 3
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pydicom
import structlog

from pacs.dimse.receiver import Receiver
from pacs.identity.nodes import add_node
from pacs.index.db import transaction
from pacs.index.migrate import upgrade
from pacs.service import build_services
from pacs.settings import Settings
from tests.conftest import add_demo_site, free_port, storescu, wait_for
from tests.pacs.helpers import write_ct


def _timed(command: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    assert "Success" in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    return elapsed


def _report(label: str, count: int, seconds: list[float]) -> None:
    rates = [count / s for s in seconds]
    print(f"{label}: {statistics.median(rates):.0f} images/s ({min(rates):.0f}–{max(rates):.0f}), n={len(rates)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slices", type=int, default=100)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    home = Path(tempfile.mkdtemp(prefix="yunying-retrieve-"))
    settings = Settings(home=home / "var", dicom_host="127.0.0.1", dicom_port=0)
    upgrade(settings.resolved_database_url)
    services = build_services(settings)
    add_demo_site(services)
    port = free_port()
    with transaction(services.sessions) as session:
        add_node(
            session, ae_title="DEST", host="127.0.0.1", port=port, allowed_address="127.0.0.1", consortium="Dongtai"
        )
    receiver = Receiver(settings, services.ingest, services.sessions)
    receiver.start()
    try:
        series = write_ct(home / "ct", slices=args.slices, seed=3)
        assert storescu(receiver.port, series)[:2] == (args.slices, 0)
        study = str(pydicom.dcmread(series[0], stop_before_pixels=True).StudyInstanceUID)
        scu = ["-aet", "FUDONG_CT", "-aec", "YUNYING"]
        move = ["movescu", "-v", "-S", *scu, "-aem", "DEST", "-k", "QueryRetrieveLevel=STUDY"]
        move += ["-k", f"StudyInstanceUID={study}", "127.0.0.1", str(receiver.port)]
        for nodelay in ("0", "1"):
            folder = home / f"received-{nodelay}"
            folder.mkdir()
            env = {**os.environ, "TCP_NODELAY": nodelay}
            destination = subprocess.Popen(
                ["storescp", "-od", str(folder), str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for(
                    lambda: subprocess.run(["echoscu", "127.0.0.1", str(port)], capture_output=True).returncode == 0
                )
                times = []
                for _ in range(args.runs):
                    times.append(_timed(move))
                    assert len(list(folder.iterdir())) == args.slices
                    for path in folder.iterdir():
                        path.unlink()
                _report(f"C-MOVE to storescp, destination TCP_NODELAY={nodelay}", args.slices, times)
            finally:
                destination.terminate()
                destination.wait(10)
        find = ["findscu", "-v", "-S", *scu, "-k", "QueryRetrieveLevel=IMAGE", "-k", "SOPInstanceUID="]
        find += ["127.0.0.1", str(receiver.port)]
        _report("C-FIND IMAGE level (answers)", args.slices, [_timed(find) for _ in range(args.runs)])
    finally:
        receiver.stop()
        services.close()


if __name__ == "__main__":
    main()
