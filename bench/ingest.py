#!/usr/bin/env python
"""Ingest benchmark: C-STORE throughput and memory of a real ``yunying receiver``.

For each configuration (index × associations × TCP_NODELAY × receiver processes) this starts a
fresh ``yunying receiver`` subprocess (its own YUNYING_HOME in a temp dir, a free port on
127.0.0.1, YUNYING_LOG_LEVEL=WARNING), waits until it listens (one LISTEN socket per process in
/proc/net/tcp), sends synthetic 300-slice 512×512 CT studies with dcmtk ``storescu`` — one study
per association, distinct study UIDs — and measures:

* images/s and MB/s (MB = 10^6 bytes of Part-10 files sent): wall time from just before the first
  storescu starts to the moment the last one exits;
* the receiver's peak RSS (VmHWM of /proc/<pid>/status, read after sending, before stopping);
  with ``--processes N`` the figure is the *sum* over the supervisor and its N workers, and the
  largest single process is reported beside it;
* CPU: the receiver's (user+sys, all its processes, and per process), the senders', and how busy
  the whole machine was (/proc/stat).

The index is SQLite or a throw-away PostgreSQL database (``yunying_bench_<random>``, created and
dropped here); both are migrated with ``yunying db upgrade`` and get a site and an AE through the
CLI once, as a template copied for every run. Every run is checked: each storescu must log
``Received Store Response (Success)`` once per file (storescu exits 0 even when instances fail)
and the index must hold one instance row per file. Runs are interleaved (repeat 1 of every
configuration, then repeat 2, ...) so drift spreads evenly; the table gives median (min–max).
Figures: bench/results/ingest-<timestamp>.json. See docs/performance.md.

    .venv/bin/python bench/ingest.py                      # the full default matrix (~13 min, 2 cores)
    .venv/bin/python bench/ingest.py --index sqlite --associations 1 --runs 1
    .venv/bin/python bench/ingest.py --profile --index sqlite --associations 4 --nodelay on --runs 1

``--profile`` attaches py-spy to the receiver's workers for the sending phase only and prints the
top functions and a breakdown by ingest stage (``--profile-idle``: wall time instead of CPU).

``--index ...,orthanc`` adds Orthanc (Debian's ``orthanc`` package, 1.10: the issue's reference,
``apt-get install orthanc``) as one more row, run as shipped (its SQLite index and folder store,
``SyncStorageArea`` on, 4 DICOM threads) with the same senders, interleaved with the other rows.
The issue's figures for Orthanc were measured on another machine; this one compares on the same
machine at the same minutes, which is the only comparison this machine's swings allow.

    .venv/bin/python bench/ingest.py --index sqlite,orthanc --associations 1,4 --nodelay on --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"

SITE = "Bench Township Health Centre"
CONSORTIUM = "Bench Consortium"
CALLING_AE = "BENCH_CT"
CALLED_AE = "YUNYING"
ORTHANC_STORAGE = "storage"  # in a run's home: Orthanc's files and its SQLite index ("index")
BASE_SEED = 52_000  # studies use BASE_SEED, BASE_SEED+1, ...: distinct seeds → distinct study UIDs
PG_ADMIN_DEFAULT = os.environ.get("YUNYING_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SUCCESS_LINE = b"Received Store Response (Success)"
ANY_RESPONSE_LINE = b"Received Store Response"

# Piped output (CI logs, `| tee`) would otherwise be wrapped at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=int(os.environ.get("COLUMNS", "190")))


# ---------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class StudyFiles:
    seed: int
    study_uid: str
    folder: Path
    files: tuple[Path, ...]
    bytes: int


def _study_folder(seed: int, slices: int, rows: int, cols: int) -> Path:
    return CACHE / f"ct-abdomen-{slices}x{rows}x{cols}-seed{seed}"


def _load_cached(folder: Path, slices: int) -> StudyFiles | None:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        meta = json.loads(manifest.read_text())
        files = tuple(folder / name for name in meta["files"])
        if len(files) != slices or not all(f.is_file() for f in files):
            return None
        size = sum(f.stat().st_size for f in files)
        if size != meta["bytes"]:
            return None
        return StudyFiles(meta["seed"], meta["study_uid"], folder, files, size)
    except (OSError, ValueError, KeyError):
        return None


def _generate(seed: int, slices: int, rows: int, cols: int, folder: Path, advance: Callable[[], None]) -> StudyFiles:
    """Write one single-series CT study with datasets.synthetic (streaming), then a manifest."""
    import pydicom

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from datasets import synthetic

    if folder.exists():
        shutil.rmtree(folder)
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    on_written = lambda _path: advance()  # noqa: E731
    if hasattr(synthetic, "write_study"):
        paths = synthetic.write_study(
            partial, seed=seed, exam="ct-abdomen", slices=slices, rows=rows, cols=cols, on_written=on_written
        )
    else:  # older API: build the series, then write it
        iterate = getattr(synthetic, "iter_ct_series", None) or synthetic.ct_series
        series = iterate("abdomen", slices, seed=seed, rows=rows, cols=cols)
        try:
            paths = synthetic.write_series(series, partial, on_written=on_written)
        except TypeError:
            paths = synthetic.write_series(series, partial)
    paths = sorted(paths)
    study_uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    partial.rename(folder)
    files = tuple(folder / p.name for p in paths)
    size = sum(f.stat().st_size for f in files)
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "study_uid": study_uid,
                "slices": slices,
                "rows": rows,
                "cols": cols,
                "files": [f.name for f in files],
                "bytes": size,
            },
            indent=1,
        )
    )
    return StudyFiles(seed, study_uid, folder, files, size)


def prepare_studies(count: int, slices: int, rows: int, cols: int) -> list[StudyFiles]:
    """The benchmark's studies, generated once and cached under bench/.cache/."""
    studies: list[StudyFiles | None] = []
    missing: list[int] = []
    for i in range(count):
        folder = _study_folder(BASE_SEED + i, slices, rows, cols)
        cached = _load_cached(folder, slices)
        studies.append(cached)
        if cached is None:
            missing.append(i)
    if missing:
        CACHE.mkdir(parents=True, exist_ok=True)
        with Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(
                f"Generating {len(missing)} CT studies ({slices}×{rows}×{cols}) into {CACHE.relative_to(ROOT)}",
                total=len(missing) * slices,
            )
            for i in missing:
                seed = BASE_SEED + i
                studies[i] = _generate(
                    seed, slices, rows, cols, _study_folder(seed, slices, rows, cols), lambda: progress.advance(task)
                )
    result = [s for s in studies if s is not None]
    uids = {s.study_uid for s in result}
    if len(uids) != len(result):
        raise SystemExit("the synthetic generator gave two seeds the same study UID; the benchmark needs distinct ones")
    return result


# ---------------------------------------------------------------------------------------- processes


def yunying_command() -> list[str]:
    script = Path(sys.executable).parent / "yunying"
    if script.exists():
        return [str(script)]
    found = shutil.which("yunying")
    if found:
        return [found]
    return [sys.executable, "-c", "from viewer.cli import app; app()"]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any YUNYING_* of its own, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNYING_")}
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run([*yunying_command(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"`yunying {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_sockets(port: int) -> int:
    """Number of sockets in LISTEN on ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    stack = children(pid)
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children(child))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of ``pid`` (its threads included, its children not)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float, float]:
    """(busy, iowait, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return float(total - idle - iowait), float(iowait), float(total)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


# ---------------------------------------------------------------------------------------- index


@dataclass
class IndexTemplate:
    """A migrated index with the bench site and AE, copied for every run (saves ~3 CLI starts a run)."""

    kind: str  # sqlite | postgres | orthanc
    root: Path
    sqlite_dir: Path | None = None
    pg_admin: str = ""
    pg_template: str = ""
    pg_created: list[str] = field(default_factory=list)

    # ---- PostgreSQL helpers

    def _pg_url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.pg_admin).set(database=database).render_as_string(hide_password=False)

    def _pg_admin_conninfo(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.pg_admin).set(drivername="postgresql").render_as_string(hide_password=False)

    def _pg_execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self._pg_admin_conninfo(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def _pg_create(self, name: str, template: str | None = None) -> None:
        self._pg_execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.pg_created.append(name)

    def _pg_drop(self, name: str) -> None:
        self._pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.pg_created:
            self.pg_created.remove(name)

    # ---- life cycle

    def build(self) -> None:
        if self.kind == "orthanc":
            return  # each run's Orthanc makes its own index
        home = self.root / f"template-{self.kind}"
        home.mkdir(parents=True)
        env = {"YUNYING_HOME": str(home), "YUNYING_LOG_LEVEL": "WARNING"}
        if self.kind == "postgres":
            self.pg_template = f"yunying_bench_{secrets.token_hex(4)}"
            self._pg_create(self.pg_template)
            env["YUNYING_DATABASE_URL"] = self._pg_url(self.pg_template)
        else:
            self.sqlite_dir = home
        env = clean_env(env)
        run_cli(["db", "upgrade"], env, home)
        run_cli(["site", "add", SITE, "--tier", "township", "--consortium", CONSORTIUM], env, home)
        run_cli(["ae", "add", CALLING_AE, "--site", SITE, "--address", "127.0.0.1"], env, home)

    def instantiate(self, home: Path, run_id: str) -> str:
        """Give ``home`` a copy of the template index; returns YUNYING_DATABASE_URL ("" = SQLite in home)."""
        if self.kind == "orthanc":
            return ""
        if self.kind == "sqlite":
            assert self.sqlite_dir is not None
            for db_file in self.sqlite_dir.glob("yunying.db*"):
                shutil.copy2(db_file, home / db_file.name)
            return ""
        name = f"{self.pg_template}_{run_id}"
        self._pg_create(name, template=self.pg_template)
        return self._pg_url(name)

    def count_instances(self, home: Path, url: str) -> int:
        sql = "SELECT count(*) FROM instance"
        if self.kind == "orthanc":  # its index (schema 6): resourceType 1 patient … 4 instance
            with contextlib.closing(sqlite3.connect(home / ORTHANC_STORAGE / "index")) as conn:
                return int(conn.execute("SELECT count(*) FROM Resources WHERE resourceType = 4").fetchone()[0])
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(home / "yunying.db")) as conn:
                return int(conn.execute(sql).fetchone()[0])
        import psycopg
        from sqlalchemy.engine import make_url

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0

    def release(self, url: str) -> None:
        if self.kind == "postgres" and url:
            from sqlalchemy.engine import make_url

            name = make_url(url).database
            if name:
                self._pg_drop(name)

    def destroy(self) -> None:
        if self.kind == "postgres":
            for name in list(self.pg_created):
                with contextlib.suppress(Exception):
                    self._pg_drop(name)


# ---------------------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Config:
    index: str
    associations: int
    nodelay: bool
    processes: int

    @property
    def label(self) -> str:
        procs = f", {self.processes} rx processes" if self.processes > 1 else ""
        receiver = "Orthanc (its SQLite + folder)" if self.index == "orthanc" else f"{self.index}+folder"
        return (
            f"{receiver}, {self.associations} assoc{'s' if self.associations > 1 else ''}, "
            f"TCP_NODELAY={'1' if self.nodelay else 'unset'}{procs}"
        )

    @property
    def key(self) -> str:
        return f"{self.index}/a{self.associations}/nd{int(self.nodelay)}/p{self.processes}"


@dataclass
class RunResult:
    config: str
    repeat: int
    ok: bool
    images: int
    bytes: int
    wall_s: float
    images_per_s: float
    mb_per_s: float
    rss_peak_mb: float  # sum of VmHWM over the receiver's processes (one process: its VmHWM)
    rss_max_process_mb: float  # the largest VmHWM of a single receiver process
    receiver_cpu_s: float
    receiver_cpu_pct: float  # of one core, over the send wall time
    successes: int
    failures: int
    indexed: int
    receiver_warnings: int
    startup_s: float
    error: str = ""
    profile: str = ""
    receiver_cpu_s_by_process: list[float] = field(default_factory=list)
    rss_mb_by_process: list[float] = field(default_factory=list)
    sender_cpu_s: float = 0.0  # user+sys of all storescu processes
    machine_busy_pct: float = 0.0  # all CPUs, from /proc/stat over the send: 100 = every core busy
    machine_iowait_pct: float = 0.0


class Receiver:
    """A ``yunying receiver`` subprocess in its own session (process group)."""

    def __init__(self, home: Path, database_url: str, processes: int) -> None:
        self.home = home
        self.port = free_port()
        self.processes = processes
        self.log_path = home / "receiver.log"
        env = clean_env(
            {
                "YUNYING_HOME": str(home),
                "YUNYING_DATABASE_URL": database_url,
                "YUNYING_DICOM_HOST": "127.0.0.1",
                "YUNYING_DICOM_PORT": str(self.port),
                "YUNYING_LOG_LEVEL": "WARNING",
                "YUNYING_MODE": "local",
                "YUNYING_STABILITY_SECONDS": "60",
            }
        )
        self._launch([*yunying_command(), "receiver", "--processes", str(processes)], env)

    def _launch(self, command: list[str], env: dict[str, str]) -> None:
        self._log = open(self.log_path, "wb")
        self.started = time.perf_counter()
        # cwd = home: a .env of whoever runs the bench must not configure the receiver.
        self.proc = subprocess.Popen(
            command, env=env, cwd=self.home, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_listening(self, timeout: float = 90.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited with {self.proc.returncode} before listening:\n{self.log_tail()}")
            # With N processes the supervisor says so once every worker listens.
            ready = self.processes == 1 or "receiver processes listening" in self.log_tail()
            if listening_sockets(self.port) >= 1 and ready:
                return time.perf_counter() - self.started
            time.sleep(0.05)
        raise RuntimeError(f"receiver not listening on {self.port} after {timeout:.0f} s:\n{self.log_tail()}")

    def python_pids(self) -> list[int]:
        """The receiver's Python processes: supervisor and workers (not the multiprocessing
        resource tracker, should there be one)."""
        return [pid for pid in [self.proc.pid, *descendants(self.proc.pid)] if "resource_tracker" not in cmdline(pid)]

    def worker_pids(self) -> list[int]:
        pids = self.python_pids()
        workers = [p for p in pids if "spawn_main" in cmdline(p)]
        return workers or pids

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def warnings(self) -> int:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if re.search(r"\b(warning|error|critical)\b", line, re.I))

    def stop(self, timeout: float = 20.0) -> None:
        pids = self.python_pids()
        # Workers first (they stop gracefully on SIGTERM), then the supervisor.
        for pid in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.proc.poll() is None or any(alive(p) for p in pids)):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()


class OrthancReceiver(Receiver):
    """Orthanc from Debian's package (1.10, the issue's reference), started fresh for each run like
    ours, with the package's own settings written out (a build with other defaults must not change
    the comparison) and only its ports and folders changed. One process; its own SQLite index."""

    def __init__(self, home: Path, nodelay: bool) -> None:  # a different command: Receiver's set-up not wanted
        self.home = home
        self.port = free_port()
        self.processes = 1
        self.log_path = home / "orthanc.log"
        storage = home / ORTHANC_STORAGE
        storage.mkdir()
        config = {
            "Name": "bench",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": CALLED_AE,
            "DicomPort": self.port,
            "HttpPort": free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            # As in the package's /etc/orthanc/orthanc.json:
            "StorageCompression": False,
            "SyncStorageArea": True,  # each stored file fsynced before Success
            "DicomThreadsCount": 4,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "OverwriteInstances": False,
            "ConcurrentJobs": 2,
        }
        config_path = home / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        # dcmtk, under Orthanc's DICOM server, reads TCP_NODELAY for the sockets it accepts too.
        self._launch(["Orthanc", str(config_path)], storescu_env(nodelay))

    def warnings(self) -> int:
        # Orthanc's own log format: "E1204 19:58:40.123456 file.cpp:12] message". Only errors count:
        # as shipped it logs its start and stop as warnings (W).
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if re.match(r"E\d{4} ", line))


def orthanc_version() -> str:
    with contextlib.suppress(Exception):
        done = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True, timeout=10)
        return done.stdout.splitlines()[0].strip()
    return ""


class Profiler:
    """py-spy attached to the receiver's workers for the sending phase only (start-up imports
    and shutdown stay out of the profile). Raw collapsed stacks, one file per worker."""

    def __init__(self, pids: list[int], stem: Path, *, idle: bool, rate: int, lines: bool) -> None:
        py_spy = Path(sys.executable).parent / "py-spy"
        self.paths = (
            [stem.with_name(f"{stem.name}-pid{pid}.txt") for pid in pids]
            if len(pids) > 1
            else [stem.with_name(stem.name + ".txt")]
        )
        self.procs = []
        self.logs = []
        for pid, path in zip(pids, self.paths, strict=True):
            log = open(path.with_suffix(".log"), "wb")
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    [
                        str(py_spy if py_spy.exists() else "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        *([] if lines else ["--function"]),
                        "--rate",
                        str(rate),
                        "--nonblocking",
                        "-o",
                        str(path),
                        *(["--idle"] if idle else []),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )

    def wait_attached(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(b"Sampling process" in Path(log.name).read_bytes() for log in self.logs):
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.05)
        problems = "\n".join(Path(log.name).read_text(errors="replace") for log in self.logs)
        raise RuntimeError(f"py-spy did not attach (ptrace rights?):\n{problems}")

    def stop(self) -> list[Path]:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self.logs:
            log.close()
            with contextlib.suppress(OSError):
                Path(log.name).unlink()
        return [p for p in self.paths if p.exists()]


def storescu_env(nodelay: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    return env


class OutputCounter:
    """Counts storescu's Store Responses in its -v output file, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        self.successes = 0
        self.responses = 0

    def update(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        if not data:
            return
        self.offset += len(data)
        data = self.tail + data
        cut = data.rfind(b"\n") + 1
        complete, self.tail = data[:cut], data[cut:]
        self.successes += complete.count(SUCCESS_LINE)
        self.responses += complete.count(ANY_RESPONSE_LINE)

    def finish(self) -> None:
        self.update()
        if self.tail:
            self.successes += self.tail.count(SUCCESS_LINE)
            self.responses += self.tail.count(ANY_RESPONSE_LINE)
            self.tail = b""


def run_once(
    config: Config,
    repeat: int,
    studies: list[StudyFiles],
    template: IndexTemplate,
    workdir: Path,
    progress: Progress,
    task: Any,
    args: argparse.Namespace,
) -> RunResult:
    run_id = f"r{repeat}_{secrets.token_hex(3)}"
    home = Path(tempfile.mkdtemp(prefix=f"rx-{config.index}-", dir=workdir))
    sent = studies[: config.associations]
    total_images = sum(len(s.files) for s in sent)
    total_bytes = sum(s.bytes for s in sent)
    progress.reset(task, total=total_images, description=f"  {config.label} · run {repeat}: starting receiver")
    url = ""
    receiver: Receiver | None = None
    profiler: Profiler | None = None
    procs: list[subprocess.Popen[bytes]] = []
    result = RunResult(
        config.key, repeat, False, total_images, total_bytes, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0
    )
    try:
        url = template.instantiate(home, run_id)
        receiver = (
            OrthancReceiver(home, config.nodelay)
            if config.index == "orthanc"
            else Receiver(home, url, config.processes)
        )
        result.startup_s = receiver.wait_listening()
        rx_pids = receiver.python_pids()
        if args.profile and config.index != "orthanc":  # py-spy reads Python processes only
            RESULTS.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            stem = RESULTS / (
                f"profile-{stamp}-{config.index}-a{config.associations}-nd{int(config.nodelay)}"
                f"-p{config.processes}{'-idle' if args.profile_idle else ''}"
                f"{'-lines' if args.profile_lines else ''}"
            )
            progress.update(task, description=f"  {config.label} · run {repeat}: attaching py-spy")
            profiler = Profiler(
                receiver.worker_pids(), stem, idle=args.profile_idle, rate=args.profile_rate, lines=args.profile_lines
            )
            profiler.wait_attached()
        cpu_before = {p: cpu_seconds(p) for p in rx_pids}

        outputs = [home / f"storescu-{i}.log" for i in range(len(sent))]
        counters = [OutputCounter(p) for p in outputs]
        handles = [open(p, "wb") for p in outputs]
        ends: list[float] = [0.0] * len(sent)
        env = storescu_env(config.nodelay)
        progress.update(task, description=f"  {config.label} · run {repeat}: sending")

        sender_cpu: list[float] = [0.0] * len(sent)

        def wait_for(index: int, proc: subprocess.Popen[bytes]) -> None:
            # wait4 rather than wait(): the sender's CPU time comes with its exit status.
            _, status, usage = os.wait4(proc.pid, 0)
            ends[index] = time.perf_counter()
            proc.returncode = os.waitstatus_to_exitcode(status)
            sender_cpu[index] = usage.ru_utime + usage.ru_stime

        waiters: list[threading.Thread] = []
        machine_before = machine_cpu()
        start = time.perf_counter()
        for i, study in enumerate(sent):
            command = [
                "storescu",
                "-v",
                "-aet",
                CALLING_AE,
                "-aec",
                CALLED_AE,
                "127.0.0.1",
                str(receiver.port),
                *map(str, study.files),
            ]
            proc = subprocess.Popen(
                command, env=env, stdout=handles[i], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            procs.append(proc)
            waiter = threading.Thread(target=wait_for, args=(i, proc), daemon=True)
            waiter.start()
            waiters.append(waiter)
        deadline = start + args.send_timeout
        while any(w.is_alive() for w in waiters):
            for counter in counters:
                counter.update()
            progress.update(task, completed=sum(c.responses for c in counters))
            if time.perf_counter() > deadline:
                for proc in procs:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                result.error = f"storescu still running after {args.send_timeout:.0f} s"
            time.sleep(0.2)
        for waiter in waiters:
            waiter.join()
        for handle in handles:
            handle.close()
        wall = max(ends) - start
        machine_after = machine_cpu()

        # Peak memory and CPU, before the receiver is stopped.
        rx_pids = receiver.python_pids()
        hwm = [status_kb(p, "VmHWM") or 0 for p in rx_pids]
        cpu_after = {p: cpu_seconds(p) for p in rx_pids}

        for counter in counters:
            counter.finish()
        progress.update(task, completed=sum(c.responses for c in counters))
        successes = sum(c.successes for c in counters)
        responses = sum(c.responses for c in counters)
        result.successes = successes
        result.failures = responses - successes
        result.wall_s = wall
        result.images_per_s = total_images / wall if wall > 0 else 0.0
        result.mb_per_s = total_bytes / 1e6 / wall if wall > 0 else 0.0
        result.rss_peak_mb = sum(hwm) / 1024
        result.rss_max_process_mb = max(hwm, default=0) / 1024
        result.rss_mb_by_process = [round(kb / 1024, 1) for kb in hwm]
        result.sender_cpu_s = sum(sender_cpu)
        busy, iowait, elapsed = (after - before for after, before in zip(machine_after, machine_before, strict=True))
        if elapsed > 0:
            result.machine_busy_pct = 100 * busy / elapsed
            result.machine_iowait_pct = 100 * iowait / elapsed
        result.receiver_cpu_s = sum(cpu_after.values()) - sum(cpu_before.values())
        # Per process (supervisor first): shows how the associations were spread.
        result.receiver_cpu_s_by_process = [round(cpu_after[p] - cpu_before.get(p, 0.0), 2) for p in rx_pids]
        result.receiver_cpu_pct = 100 * result.receiver_cpu_s / wall if wall > 0 else 0.0
        rcs = [p.returncode for p in procs]
        if profiler is not None:
            result.profile = ",".join(str(p) for p in profiler.stop())
            profiler = None

        progress.update(task, description=f"  {config.label} · run {repeat}: stopping receiver")
        receiver.stop()
        result.receiver_warnings = receiver.warnings()
        result.indexed = template.count_instances(home, url)
        problems = []
        if successes != total_images:
            problems.append(f"{successes}/{total_images} Success responses ({result.failures} failed)")
        if result.indexed != total_images:
            problems.append(f"{result.indexed}/{total_images} instances indexed")
        if any(rc != 0 for rc in rcs):
            problems.append(f"storescu exit codes {rcs}")
        if problems:
            first_bad = next(
                (p for p, c in zip(outputs, counters, strict=True) if c.successes != c.responses or c.responses == 0),
                outputs[0],
            )
            tail = "\n".join(first_bad.read_text(errors="replace").splitlines()[-8:])
            result.error = (
                "; ".join([*filter(None, [result.error]), *problems])
                + f"\n--- {first_bad.name} (tail)\n{tail}\n--- receiver.log (tail)\n{receiver.log_tail(10)}"
            )
        result.ok = not result.error
    except Exception as exc:  # one failing run must not lose the others' figures
        result.error = result.error or f"{type(exc).__name__}: {exc}"
        if receiver is not None:
            result.error += f"\n--- receiver.log (tail)\n{receiver.log_tail(15)}"
    finally:
        for proc in procs:  # interrupted while sending
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        if profiler is not None:
            profiler.stop()
        if receiver is not None and receiver.proc.poll() is None:
            receiver.stop()
        with contextlib.suppress(Exception):
            template.release(url)
        if args.keep:
            console.print(f"[dim]kept {home}[/dim]")
        # Not deleted here but with the work folder at the end: on this machine's ext4 (no
        # journal) every file created within a minute or more of a mass delete in its block
        # group walks the recently deleted inodes first — measured 560–880 µs of CPU a create
        # after 2,400 files of the group went, against 19 µs in a group without. The next run's
        # receiver would pay that for each image; a receiver in service deletes next to nothing.
        os.sync()  # the next run must not pay for this one's writeback
    return result


# ---------------------------------------------------------------------------------------- profile summary


def read_profile(path: Path) -> list[tuple[list[str], int]]:
    """py-spy raw output: one collapsed stack per line, ``frame;frame;... count``."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames:
            stacks.append((frames, int(count_text)))
    return stacks


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Top functions by self and by inclusive share of the samples."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for frames, count in read_profile(path):
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            incl_counts[frame] += count
    return {
        "samples": total,
        "self": [(f, 100 * c / total) for f, c in self_counts.most_common(top)] if total else [],
        "inclusive": [(f, 100 * c / total) for f, c in incl_counts.most_common(top)] if total else [],
    }


def _has(frames: list[str], *names: str) -> bool:
    return any(name in frame for frame in frames for name in names)


def categorise(frames: list[str]) -> str:
    """Where one sample of the receiver was, in the words of the ingest path."""
    leaf = frames[-1]
    if _has(frames, "StoreSCP.on_c_store"):
        if _has(frames, "inspect_part10"):
            if _has(frames, "to_json_dict"):
                return "C-STORE handler › inspect_part10: DICOM JSON header (pydicom to_json_dict)"
            if _has(frames, "dcmread", "read_partial"):
                return "C-STORE handler › inspect_part10: parse header (pydicom dcmread)"
            return "C-STORE handler › inspect_part10: SHA-256 ×3, reads, checks"
        if _has([leaf], "fsync_directory"):
            return "C-STORE handler › store: fsync of the object directory"
        if _has(frames, "FolderStore.put_file", "S3Store.put_file", "put_file"):
            return "C-STORE handler › store: put_file (fsync of the file, link, mkdir)"
        if _has(frames, "do_commit"):
            return "C-STORE handler › index: COMMIT (SQLite: WAL fsync; PostgreSQL: round trip + server fsync)"
        if _has(frames, "do_execute", "_on_begin"):
            return "C-STORE handler › index: SQL in the driver (SQLite: BEGIN IMMEDIATE, SQL; PostgreSQL: round trips)"
        if _has(frames, "sqlalchemy", "transaction (pacs/index/db.py"):
            return "C-STORE handler › index: SQLAlchemy ORM / Core in Python"
        return "C-STORE handler › other"
    if _has(frames, "DULServiceProvider.run_reactor", "ReactiveDUL.run_reactor"):
        if _has(
            frames,
            "_is_transport_event",
            "_read_pdu_data",
            "recv",
            "_decode_pdu",
            "TemporaryFile",
            "decode_msg",
            "receive_pdu",
            "_process_recv_primitive",
            "do_action",
        ):
            return "pynetdicom DUL thread: read PDUs, write the temp file, state machine"
        # pacs/dimse/reactor.py: a select() on the socket and its wake-up pair (pynetdicom's
        # own loop, for associations we request: time.sleep(0.001) and a zero-timeout select).
        return "pynetdicom DUL thread: its loop, waiting for work"
    if _has(frames, "Association._run_reactor", "Association.run_reactor"):
        if _has(frames, "_serve_request", "send_msg", "StorageServiceClass.SCP"):
            return "pynetdicom association thread: C-STORE response, DIMSE encode"
        return "pynetdicom association thread: its loop, waiting for work"
    if _has(frames, "put_file"):
        return "object writer thread: put_file (fsync of the file, link, directory fsync)"
    if _has(frames, "StabilityWatcher"):
        return "stability watcher"
    if _has(frames, "serve_forever", "_handle_request_noblock", "process_request"):
        return "socketserver accept loop / new association"
    return "other"


def categorise_profile(path: Path, *, association_threads: bool = False) -> list[tuple[str, int]]:
    """Samples per category; ``association_threads``: only the threads that run the C-STORE
    handler (with --profile-idle: their wall time, one C-STORE after another)."""
    counts: Counter[str] = Counter()
    for frames, count in read_profile(path):
        if association_threads:
            if not _has(frames, "Association._run_reactor"):
                continue
            category = categorise(frames)
            if category.startswith("pynetdicom association thread: its loop"):
                category = "waiting for the next C-STORE (the DUL thread receives it)"
            counts[category] += count
        else:
            counts[categorise(frames)] += count
    return counts.most_common()


def _short(frame: str) -> str:
    return re.sub(r"\(/[^)]*?/(site-packages|lib/python3\.\d+|main)/", "(", frame)


# ---------------------------------------------------------------------------------------- reporting


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}


def aggregate(configs: list[Config], results: list[RunResult]) -> list[dict[str, Any]]:
    rows = []
    for config in configs:
        runs = [r for r in results if r.config == config.key]
        good = [r for r in runs if r.ok]
        rows.append(
            {
                "config": config.key,
                "label": config.label,
                **asdict(config),
                "runs": len(runs),
                "ok_runs": len(good),
                "images": runs[0].images if runs else 0,
                "bytes": runs[0].bytes if runs else 0,
                "images_per_s": _stats([r.images_per_s for r in good]),
                "mb_per_s": _stats([r.mb_per_s for r in good]),
                "wall_s": _stats([r.wall_s for r in good]),
                "rss_peak_mb": _stats([r.rss_peak_mb for r in good]),
                "rss_max_process_mb": _stats([r.rss_max_process_mb for r in good]),
                "receiver_cpu_pct": _stats([r.receiver_cpu_pct for r in good]),
                "sender_cpu_pct": _stats([100 * r.sender_cpu_s / r.wall_s for r in good if r.wall_s]),
                "machine_busy_pct": _stats([r.machine_busy_pct for r in good]),
                "machine_iowait_pct": _stats([r.machine_iowait_pct for r in good]),
                "startup_s": _stats([r.startup_s for r in good]),
            }
        )
    return rows


def _fmt(stats: dict[str, float], digits: int = 0) -> str:
    if not stats:
        return "—"
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def print_table(rows: list[dict[str, Any]], runs_per_config: int) -> None:
    table = Table(title=f"Ingest: median (min–max) of {runs_per_config} run(s) per configuration", title_justify="left")
    for name, justify in (
        ("index", "left"),
        ("assocs", "right"),
        ("TCP_NODELAY", "left"),
        ("rx procs", "right"),
        ("images", "right"),
        ("images/s", "right"),
        ("MB/s", "right"),
        ("peak RSS MB", "right"),
        ("rx CPU %¹", "right"),
        ("storescu CPU %¹", "right"),
        ("machine busy %²", "right"),
        ("ok", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        rss = _fmt(row["rss_peak_mb"])
        if row["processes"] > 1 and row["rss_max_process_mb"]:
            rss += f"\nΣ {row['processes'] + 1} procs; max 1: {row['rss_max_process_mb']['median']:.0f}"
        table.add_row(
            row["index"],
            str(row["associations"]),
            "1" if row["nodelay"] else "unset",
            str(row["processes"]),
            str(row["images"]),
            _fmt(row["images_per_s"]),
            _fmt(row["mb_per_s"], 1),
            rss,
            _fmt(row["receiver_cpu_pct"]),
            _fmt(row.get("sender_cpu_pct", {})),
            _fmt(row.get("machine_busy_pct", {})),
            f"{row['ok_runs']}/{row['runs']}",
        )
    console.print(table)
    console.print(
        "¹ user+sys CPU over the send, % of one core.  ² all cores, from /proc/stat (100 = every core busy).  "
        "MB = 10^6 bytes.  Peak RSS: VmHWM; with N>1 processes the sum over supervisor and workers."
    )


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        models = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu_model"] = models[0] if models else ""
    with contextlib.suppress(OSError, ValueError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["mem_total_gib"] = round(int(mem[1]) / 1024**2, 1)
    with contextlib.suppress(Exception):
        info["storescu"] = (
            subprocess.run(["storescu", "--version"], capture_output=True, text=True, timeout=10)
            .stdout.splitlines()[0]
            .strip()
        )
    if shutil.which("Orthanc"):
        info["orthanc"] = orthanc_version()
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["versions"] = {name: version(name) for name in ("pynetdicom", "pydicom", "SQLAlchemy", "psycopg")}
    with contextlib.suppress(Exception):
        import psycopg
        from sqlalchemy.engine import make_url

        conninfo = make_url(PG_ADMIN_DEFAULT).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            info["postgres"] = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_sync_method")
            }
    return info


# ---------------------------------------------------------------------------------------- main


def _csv(kind: Callable[[str], Any], allowed: set[Any] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        if allowed is not None and any(v not in allowed for v in values):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(map(str, sorted(allowed)))}")
        return values

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="C-STORE ingest benchmark of `yunying receiver` with dcmtk storescu: images/s, MB/s and peak "
        "receiver RSS per configuration (median, min, max of --runs). With no arguments it runs the "
        "full default matrix (about 15 minutes on 2 cores).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--index",
        type=_csv(str, {"sqlite", "postgres", "orthanc"}),
        default=["sqlite", "postgres"],
        help="index databases, comma-separated (both use the folder object store); 'orthanc' adds Orthanc "
        "(Debian's package, the issue's reference) as a row of its own, on the same machine in the same minutes",
    )
    parser.add_argument(
        "--associations",
        type=_csv(int),
        default=[1, 4],
        help="parallel storescu associations, each sending its own study",
    )
    parser.add_argument(
        "--nodelay",
        choices=["both", "on", "off"],
        default="both",
        help="storescu with TCP_NODELAY=1 in its environment (on), as shipped (off), or both",
    )
    parser.add_argument(
        "--processes",
        type=_csv(int),
        default=[1, 2],
        help="receiver processes (yunying receiver --processes N); N>1 only for >1 association",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="with --nodelay both, also run the --processes N>1 rows without TCP_NODELAY (by default "
        "they run with TCP_NODELAY=1 only, to keep the default matrix near 15 minutes)",
    )
    parser.add_argument("--runs", type=int, default=3, help="repeats per configuration")
    parser.add_argument("--slices", type=int, default=300, help="slices per CT study")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of each slice")
    parser.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN_DEFAULT,
        help="PostgreSQL URL with rights to CREATE/DROP DATABASE (env YUNYING_BENCH_PG)",
    )
    parser.add_argument("--send-timeout", type=float, default=600, help="seconds before a run's senders are killed")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the receiver under py-spy (raw collapsed stacks in bench/results/) and print the "
        "top functions; throughput figures of profiled runs are perturbed",
    )
    parser.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: also sample idle (blocked) threads, i.e. wall-clock instead of CPU",
    )
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument(
        "--profile-lines",
        action="store_true",
        help="with --profile: keep line numbers (default: aggregate by function)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's YUNYING_HOME (temp dir) for inspection")
    parser.add_argument("--dry-run", action="store_true", help="print the configurations and exit")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/ingest-<timestamp>.json")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.slices < 1 or any(a < 1 for a in args.associations) or any(p < 1 for p in args.processes):
        parser.error("--runs, --slices, --associations and --processes must be positive")
    return args


def build_matrix(args: argparse.Namespace) -> list[Config]:
    nodelays = {"both": [False, True], "on": [True], "off": [False]}[args.nodelay]
    configs = []
    for index in args.index:
        for associations in args.associations:
            for processes in args.processes:
                if processes > 1 and (associations == 1 or index == "orthanc"):
                    continue  # one association is served by one process whatever N is; Orthanc is one process
                for nodelay in nodelays:
                    if processes > 1 and args.nodelay == "both" and not nodelay and not args.full:
                        continue  # N>1 rows: TCP_NODELAY=1 only (the references' condition), unless --full
                    configs.append(Config(index, associations, nodelay, processes))
    return configs


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and `kill` both stop cleanly: receivers stopped, databases dropped, temp dirs removed
    # (SIGINT explicitly, since a shell starting us in the background may have set it to ignore).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    configs = build_matrix(args)
    if not configs:
        console.print("[red]no configuration selected[/red]")
        return 2
    if args.dry_run:
        for config in configs:
            console.print(f"{config.key:<22} {config.label}")
        console.print(f"{len(configs)} configurations × {args.runs} runs")
        return 0
    if shutil.which("storescu") is None:
        console.print("[red]dcmtk's storescu is not on PATH (apt-get install dcmtk)[/red]")
        return 2
    if "orthanc" in args.index and shutil.which("Orthanc") is None:
        console.print("[red]--index orthanc needs Orthanc on PATH (apt-get install orthanc)[/red]")
        return 2
    if args.profile:
        py_spy = Path(sys.executable).parent / "py-spy"
        if not py_spy.exists() and shutil.which("py-spy") is None:
            console.print("[red]--profile needs py-spy: .venv/bin/pip install py-spy[/red]")
            return 2

    started_at = dt.datetime.now().astimezone()
    studies = prepare_studies(max(c.associations for c in configs), args.slices, args.size, args.size)
    for study in studies:
        console.print(
            f"[dim]study seed {study.seed}: {len(study.files)} files, {study.bytes / 1e6:.1f} MB, "
            f"{study.study_uid}[/dim]"
        )

    workdir = Path(tempfile.mkdtemp(prefix="yunying-bench-"))
    templates: dict[str, IndexTemplate] = {}
    results: list[RunResult] = []
    profiles: list[dict[str, Any]] = []
    interrupted = False
    schedule = [(repeat, config) for repeat in range(1, args.runs + 1) for config in configs]
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
        ) as progress:
            for index in args.index:
                if any(c.index == index for c in configs):
                    setup = progress.add_task(
                        f"Preparing the {index} index template (db upgrade, site, AE)", total=None
                    )
                    template = IndexTemplate(index, workdir, pg_admin=args.pg_admin_url)
                    templates[index] = template
                    template.build()
                    progress.remove_task(setup)
            overall = progress.add_task("All runs", total=len(schedule))
            current = progress.add_task("", total=1)
            for repeat, config in schedule:
                result = run_once(config, repeat, studies, templates[config.index], workdir, progress, current, args)
                results.append(result)
                progress.advance(overall)
                if result.ok:
                    progress.console.print(
                        f"{config.label} · run {repeat}: [bold]{result.images_per_s:.0f} images/s[/bold], "
                        f"{result.mb_per_s:.1f} MB/s, {result.wall_s:.2f} s, peak RSS {result.rss_peak_mb:.0f} MB, "
                        f"rx CPU {result.receiver_cpu_pct:.0f}%, storescu CPU "
                        f"{100 * result.sender_cpu_s / result.wall_s:.0f}%, machine busy "
                        f"{result.machine_busy_pct:.0f}% (iowait {result.machine_iowait_pct:.0f}%)"
                        + (
                            f", CPU s per process {'/'.join(f'{c:.1f}' for c in result.receiver_cpu_s_by_process)}"
                            if len(result.receiver_cpu_s_by_process) > 1
                            else ""
                        )
                    )
                else:
                    progress.console.print(f"[red]{config.label} · run {repeat}: FAILED[/red] {result.error}")
                for profile in filter(None, result.profile.split(",")):
                    profiles.append(
                        print_profile(
                            Path(profile),
                            progress.console,
                            images=result.images,
                            rate=args.profile_rate,
                            idle=args.profile_idle,
                        )
                    )
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted; reporting the runs done so far[/yellow]")
    finally:
        for template in templates.values():
            template.destroy()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = aggregate(configs, results)
    print_table(rows, args.runs)
    if not args.no_json and results:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"ingest-{started_at.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(
            json.dumps(
                {
                    "started_at": started_at.isoformat(timespec="seconds"),
                    "finished_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "command": " ".join(
                        [Path(sys.executable).name, "bench/ingest.py", *(argv if argv is not None else sys.argv[1:])]
                    ),
                    "interrupted": interrupted,
                    "machine": machine_info(),
                    "units": {
                        "mb": "10^6 bytes of Part-10 files sent",
                        "rss": "VmHWM in MiB; for processes > 1 the sum "
                        "over the supervisor and its workers (rss_max_process_mb: the largest single process)",
                        "wall_s": "first storescu start to last storescu exit",
                        "receiver_cpu_pct": "receiver user+sys CPU over wall time, % of one core",
                        "sender_cpu_pct": "all storescu processes' user+sys CPU over wall time, % of one core",
                        "machine_busy_pct": "non-idle, non-iowait time of all CPUs over the send (/proc/stat), "
                        "100 = every core busy",
                    },
                    "studies": [
                        {"seed": s.seed, "study_uid": s.study_uid, "files": len(s.files), "bytes": s.bytes}
                        for s in studies
                    ],
                    "configurations": rows,
                    "runs": [asdict(r) for r in results],
                    "profiles": profiles,
                },
                indent=1,
                ensure_ascii=False,
            )
        )
        console.print(f"Figures written to {out.relative_to(ROOT)}")
    failed = [r for r in results if not r.ok]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed; they are left out of the medians[/red]")
    return 1 if failed or interrupted else 0


def print_profile(path: Path, out: Console, *, images: int, rate: int, idle: bool) -> dict[str, Any]:
    """Print and return what the receiver did while the images arrived."""
    if not path.exists():
        out.print(f"[yellow]no profile at {path} (py-spy needs ptrace rights)[/yellow]")
        return {}
    summary = summarise_profile(path)
    total = summary["samples"]
    unit = "wall" if idle else "CPU"
    for kind in ("self", "inclusive"):
        table = Table(title=f"py-spy {kind} time ({unit}), % of {total} samples ({path.name})", title_justify="left")
        table.add_column("%", justify="right")
        table.add_column("function (file:first line)")
        for frame, share in summary[kind][:20]:
            table.add_row(f"{share:.1f}", _short(frame))
        out.print(table)

    def category_table(title: str, rows: list[tuple[str, int]], denominator: int) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column("ms/image", justify="right")
        table.add_column("%", justify="right")
        table.add_column("category")
        for name, count in rows:
            table.add_row(f"{1000 * count / rate / images:.2f}", f"{100 * count / denominator:.1f}", name)
        return table

    categories = categorise_profile(path)
    out.print(
        category_table(
            f"Where the receiver's {unit} time goes (all threads; ms per image = samples / {rate} Hz / "
            f"{images} images)",
            categories,
            total,
        )
    )
    association = categorise_profile(path, association_threads=True) if idle else []
    if association:
        threads = sum(count for _, count in association)
        out.print(
            category_table(
                f"Association thread(s), wall time: {threads} samples = {threads / rate:.1f} thread-seconds "
                f"(py-spy --nonblocking misses some samples: read the shares)",
                association,
                threads,
            )
        )
    return {
        "file": str(path),
        "samples": total,
        "rate_hz": rate,
        "idle": idle,
        "images": images,
        "categories_ms_per_image": {name: round(1000 * count / rate / images, 3) for name, count in categories},
        "association_threads_ms_per_image": {
            name: round(1000 * count / rate / images, 3) for name, count in association
        },
        "top_self_pct": [(f, round(p, 2)) for f, p in summary["self"]],
        "top_inclusive_pct": [(f, round(p, 2)) for f, p in summary["inclusive"]],
    }


if __name__ == "__main__":
    sys.exit(main())
