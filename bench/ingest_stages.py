#!/usr/bin/env python
"""Where the ingest path spends its time, without the network: ``Ingest.receive`` called in
one thread on the benchmark's cached CT files, each freshly written (not yet on disk, as the
receiver's temp file is), with wall-clock timers around its stages.

The sum is the ceiling of one association on this machine: a C-STORE cannot be answered before
``Ingest.receive`` returns, so images/s over one association is at most 1000 / (ms per image).

    .venv/bin/python bench/ingest_stages.py                   # SQLite and PostgreSQL, 300 files
    .venv/bin/python bench/ingest_stages.py --index sqlite --cprofile

Diagnostic only: it wraps functions of pacs.* by name, so it may need an update when they move.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import inspect
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
PG_ADMIN_DEFAULT = os.environ.get("YUNYING_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

TIMES: Counter[str] = Counter()
TIMES_CALLS: Counter[str] = Counter()


def timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its wall time to ``TIMES[label]``."""
    original = getattr(owner, name, None)
    if original is None:
        print(f"(no {owner.__name__ if hasattr(owner, '__name__') else owner}.{name}: stage {label!r} not timed)")
        return

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - start
            TIMES_CALLS["commit" if name == "do_commit" else label] += 1

    # A classmethod fetched from its class is already bound: keep it callable from the class.
    is_classmethod = isinstance(inspect.getattr_static(owner, name, None), classmethod)
    setattr(owner, name, staticmethod(wrapper) if is_classmethod else wrapper)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"yunying_bench_{secrets.token_hex(4)}"
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(index: str, files: list[Path], admin_url: str, profile: bool) -> None:
    TIMES.clear()
    TIMES_CALLS.clear()
    home = Path(tempfile.mkdtemp(prefix="yunying-stages-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        url = stack.enter_context(postgres_database(admin_url)) if index == "postgres" else ""
        os.environ.update(YUNYING_HOME=str(home), YUNYING_DATABASE_URL=url, YUNYING_LOG_LEVEL="WARNING")
        import pydicom.dataset
        import sqlalchemy.engine.default

        import pacs.ingest
        import pacs.part10
        import pacs.storage.folder
        from pacs.identity.sites import add_site
        from pacs.index.db import transaction
        from pacs.index.migrate import upgrade
        from pacs.logs import configure_logging
        from pacs.service import build_services
        from pacs.settings import Settings

        settings = Settings()
        configure_logging(settings)
        upgrade(settings.resolved_database_url)
        services = build_services(settings)
        stack.callback(services.close)
        with transaction(services.sessions) as session:
            site_id = add_site(session, consortium="Bench", name="Bench", tier="township").id
        origin = pacs.ingest.Origin(site_id=site_id, calling_ae="BENCH_CT", source_address="127.0.0.1")

        timed(pacs.ingest, "inspect_part10", "inspect_part10 (all)")
        timed(pacs.part10.pydicom, "dcmread", "  └ pydicom.dcmread (header)")
        timed(pydicom.dataset.Dataset, "to_json_dict", "  └ Dataset.to_json_dict (should be 0: built later)")
        # The object write runs in a writer thread beside inspect_part10: its time overlaps.
        timed(services.store, "put_file", "(writer thread) store.put_file (all)")
        timed(pacs.storage.folder.os, "fsync", "  └ os.fsync (object file; SQLite fsyncs are not os.fsync)")
        timed(pacs.storage.folder, "fsync_directory", "  └ fsync_directory")
        timed(pacs.ingest._Known, "load", "index: _Known.load (3 SELECTs)")
        timed(pacs.ingest.Ingest, "_index", "index: _index (Core INSERTs and UPDATEs)")
        timed(sqlalchemy.engine.default.DefaultDialect, "do_commit", "index: COMMIT")

        statements: Counter[str] = Counter()

        from sqlalchemy import event

        @event.listens_for(services.engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements[statement.split(None, 1)[0].upper()] += 1

        incoming = settings.incoming_path
        incoming.mkdir(parents=True, exist_ok=True)
        profiler = cProfile.Profile() if profile else None
        total = 0.0
        for source in files:
            target = incoming / f"rx-{source.name}"
            target.write_bytes(source.read_bytes())  # page cache only, like pynetdicom's temp file
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            outcome = services.ingest.receive(target, origin)
            if profiler:
                profiler.disable()
            total += time.perf_counter() - start
            target.unlink(missing_ok=True)
            if not outcome.accepted:
                raise SystemExit(f"{source}: {outcome.kind} {outcome.reason}")
        n = len(files)
        print(
            f"\n{index}: Ingest.receive × {n}: {1000 * total / n:.1f} ms/image → at most "
            f"{n / total:.0f} images/s over one association"
        )
        accounted = 0.0
        for label, seconds in sorted(TIMES.items(), key=lambda kv: -kv[1]):
            print(f"  {1000 * seconds / n:6.2f} ms  {label}")
            if not label.startswith(("  ", "(")):
                accounted += seconds
        print(
            f"  {1000 * (total - accounted) / n:6.2f} ms  rest: waiting for the object write, session, BEGIN, "
            "INSERT change"
        )
        per_image = ", ".join(f"{count / n:.1f} {verb}" for verb, count in statements.most_common())
        print(f"  SQL statements per image: {per_image} (+ COMMIT ×{TIMES_CALLS['commit'] / n:.0f})")
        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumtime").print_stats(35)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="sqlite,postgres", help="sqlite, postgres or both, comma-separated")
    parser.add_argument("--files", type=int, default=300, help="how many cached files to ingest")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_DEFAULT)
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions")
    args = parser.parse_args()
    folders = sorted(CACHE.glob("ct-abdomen-*-seed*"))
    if not folders:
        print("no cached studies: run bench/ingest.py once first (it generates them)")
        return 2
    files = sorted(folders[0].glob("*.dcm"))[: args.files]
    for index in args.index.split(","):
        # One process per index: the pacs modules are wrapped in place.
        if len(args.index.split(",")) > 1:
            import subprocess

            command = [
                sys.executable,
                __file__,
                "--index",
                index,
                "--files",
                str(args.files),
                "--pg-admin-url",
                args.pg_admin_url,
                *(["--cprofile"] if args.cprofile else []),
            ]
            subprocess.run(command, check=True)
        else:
            run(index.strip(), files, args.pg_admin_url, args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
