#!/usr/bin/env python
"""How fast the receiver could go if ingest cost nothing: the ceiling the protocol stack sets.

Runs the real ``pacs.dimse.receiver.Receiver`` (hardened server, chunked receive into the
incoming folder, the StoreSCP with its admission checks) in this process, on SQLite + folder,
with ``Ingest.receive`` replaced by one of:

* ``noop``  — answer Success without touching the file: pynetdicom and the network alone;
* ``write`` — only ``store.put_file`` (fsync, hard link, directory fsync): a receiver that keeps
  the bytes durably and indexes nothing, like the issue's "bare pynetdicom" reference;
* ``full``  — the real ``Ingest.receive`` (durable and indexed).

and sends the benchmark's cached 300-slice CT studies with dcmtk ``storescu`` (``TCP_NODELAY=1``),
one study per association. Prints images/s, median (min–max) over ``--runs``. The studies come
from ``bench/ingest.py``'s cache (run it once first). See docs/performance.md.

    .venv/bin/python bench/receiver_ceiling.py                      # noop, write, full × 1, 4 assocs
    .venv/bin/python bench/receiver_ceiling.py --modes noop --associations 4 --runs 5
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
sys.path.insert(0, str(ROOT))


def run_once(mode: str, studies: list[Path]) -> tuple[float, int]:
    """One fresh receiver, ``len(studies)`` parallel storescu; (images/s, instances indexed)."""
    import structlog

    home = Path(tempfile.mkdtemp(prefix="yunying-ceiling-"))
    os.environ.update(YUNYING_HOME=str(home), YUNYING_DATABASE_URL="", YUNYING_LOG_LEVEL="WARNING")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from sqlalchemy import func, select

    from pacs.dimse.receiver import Receiver
    from pacs.identity.sites import add_site, add_site_ae
    from pacs.index.db import transaction
    from pacs.index.migrate import upgrade
    from pacs.index.models import Instance
    from pacs.ingest import IngestOutcome, Origin, OutcomeKind
    from pacs.service import build_services
    from pacs.settings import Settings

    settings = Settings(dicom_host="127.0.0.1", dicom_port=0)
    upgrade(settings.resolved_database_url)
    services = build_services(settings)
    receiver: Receiver | None = None
    try:
        with transaction(services.sessions) as session:
            site = add_site(session, consortium="Bench", name="Bench", tier="township")
            add_site_ae(session, site=site, ae_title="BENCH_CT", allowed_address="127.0.0.1")
        if mode == "noop":

            def receive(path: Path, origin: Origin) -> IngestOutcome:
                return IngestOutcome(OutcomeKind.STORED)

            services.ingest.receive = receive  # type: ignore[method-assign]
        elif mode == "write":
            from pacs.storage import object_key

            def receive(path: Path, origin: Origin) -> IngestOutcome:
                services.store.put_file(object_key("instances"), path)
                return IngestOutcome(OutcomeKind.STORED)

            services.ingest.receive = receive  # type: ignore[method-assign]
        receiver = Receiver(settings, services.ingest, services.sessions)
        receiver.start()
        files = [sorted(study.glob("*.dcm")) for study in studies]
        env = {**os.environ, "TCP_NODELAY": "1"}
        start = time.monotonic()
        senders = [
            subprocess.Popen(
                ["storescu", "-aet", "BENCH_CT", "-aec", settings.ae_title, "127.0.0.1", str(receiver.port)]
                + [str(f) for f in names],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for names in files
        ]
        failures = [p.communicate()[1] for p in senders if p.wait() != 0]
        elapsed = time.monotonic() - start
        if failures:
            raise SystemExit(f"storescu failed: {failures[0][-500:]}")
        with transaction(services.sessions) as session:
            indexed = int(session.scalar(select(func.count()).select_from(Instance)) or 0)
        return sum(map(len, files)) / elapsed, indexed
    finally:
        if receiver is not None:
            receiver.stop()
        services.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="noop,write,full", help="comma-separated: noop, write, full")
    parser.add_argument("--associations", default="1,4", help="comma-separated counts (≤ cached studies)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    studies = sorted(CACHE.glob("ct-abdomen-*-seed*"))
    if not studies:
        print("no cached studies: run bench/ingest.py once first (it generates them)")
        return 2
    if shutil.which("storescu") is None:
        print("storescu not found: apt-get install dcmtk")
        return 2
    for mode in args.modes.split(","):
        for count in map(int, args.associations.split(",")):
            if count > len(studies):
                print(f"only {len(studies)} cached studies; skipping {count} associations")
                continue
            rates = []
            for _ in range(args.runs):
                # A child process per run: pacs is patched in place and pynetdicom keeps state.
                done = subprocess.run(
                    [sys.executable, __file__, "--one", mode, str(count)], capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    print(done.stdout, done.stderr, sep="\n")
                    return 1
                rate, indexed = done.stdout.split()
                rates.append(float(rate))
            print(
                f"{mode:5} {count} assoc: {statistics.median(rates):5.0f} images/s "
                f"({min(rates):.0f}–{max(rates):.0f}, {args.runs} runs; {indexed} indexed in the last)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        rate, indexed = run_once(sys.argv[2], sorted(CACHE.glob("ct-abdomen-*-seed*"))[: int(sys.argv[3])])
        print(f"{rate:.1f} {indexed}")
        sys.exit(0)
    sys.exit(main())
