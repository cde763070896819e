#!/usr/bin/env python
"""Load through the production topology (issue G): N senders each push a CT study through
HAProxy (TCP, ``send-proxy-v2``) to two ``yunying receiver`` processes, while M clients run
QIDO-RS searches and WADO-RS metadata and frame retrievals through HAProxy (HTTP, terminating
TLS) against two ``yunying web`` processes. Checked
afterwards: every instance present once with the sha256 of the file sent, no failure status;
measured: images/s, the p50/p95 of the time a C-STORE waits for its Success, the receivers'
peak RSS, and the web clients' latencies and errors.

    .venv/bin/python bench/reliability.py                           # 8 × 300-slice 512² CT, 4 web clients
    .venv/bin/python bench/reliability.py --senders 8 --slices 60 --size 256 --database postgres

``tests/reliability/test_load.py`` runs a smaller variant of the same driver.
Figures: bench/results/reliability-<timestamp>.json; docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets import synthetic  # noqa: E402
from pacs.part10 import file_meta_end  # noqa: E402

YUNYING = Path(sys.executable).parent / "yunying"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def dataset_sha256(path: Path) -> str:
    offset = file_meta_end(path)
    assert offset is not None
    return hashlib.sha256(path.read_bytes()[offset:]).hexdigest()


def studies(cache: Path, count: int, slices: int, size: int) -> list[list[Path]]:
    found = []
    for n in range(count):
        folder = cache / f"load-{slices}x{size}-{n}"
        files = sorted(folder.glob("*.dcm"))
        if len(files) != slices:
            folder.mkdir(parents=True, exist_ok=True)
            files = synthetic.write_series(
                synthetic.ct_series("head", slices, seed=91000 + n, rows=size, cols=size), folder
            )
        found.append(files)
    return found


def vm_hwm_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


@dataclass
class Topology:
    home: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)
    receivers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dicom_port: int = 0
    web_url: str = ""
    web_urls: list[str] = field(default_factory=list)
    webs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ai_workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    token: str = ""
    verify: ssl.SSLContext | bool = True  # what an HTTPS client checks the web balancer's certificate with

    def cli(self, *args: str) -> str:
        """A ``yunying`` command against this topology's index; its output."""
        return _cli(self.env, self.home, *args)

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.home / f"{name}.log").open("wb")
        self.logs.append(log)
        process = subprocess.Popen(command, env=env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on {port} after {timeout} s")


def _cli(env: dict[str, str], home: Path, *args: str) -> str:
    done = subprocess.run([str(YUNYING), *args], env=env, cwd=home, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"yunying {' '.join(args)}: {done.stdout}\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def topology(
    home: Path,
    database_url: str | None,
    *,
    extra_env: dict[str, str] | None = None,
    webs: int = 1,
    ai_workers: int = 0,
    reading_worker: bool = False,
    delivery_worker: bool = False,
    web_balancer: bool = False,
    site_options: list[str] | None = None,
    setup: list[list[str]] | None = None,
) -> Iterator[Topology]:
    """Index, two receivers behind HAProxy, web processes and (optionally) AI, reading and
    delivery workers, each its own process; a site, its AE and a token. ``extra_env``: more
    YUNYING_* settings for every process (an S3 store, a shorter lease, …). ``web_balancer``:
    the web processes behind HAProxy in HTTP mode terminating TLS (a certificate of the
    consortium CA), which forwards the client's address (X-Forwarded-For, believed by the web
    processes from loopback only); ``world.web_url`` is then the balancer's. ``setup``: more
    ``yunying`` commands run before anything starts (readers, rosters, …); ``site_options``: more
    options of ``yunying site add`` for the site (its return destination, say)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNYING_")}
    env.update(
        {
            "YUNYING_HOME": str(home),
            "YUNYING_LOG_LEVEL": "WARNING",
            "YUNYING_STABILITY_SECONDS": "3600",
            "YUNYING_DICOM_HOST": "127.0.0.1",
            "YUNYING_DICOM_PROXY_FROM": '["127.0.0.1"]',
            "YUNYING_HTTP_HOST": "127.0.0.1",
            "YUNYING_AI_IN_SERVICE": "false",
            "COLUMNS": "200",
        }
    )
    if database_url:
        env["YUNYING_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    _cli(env, home, "db", "upgrade")
    if web_balancer:
        env["YUNYING_HTTP_PROXY_FROM"] = '["127.0.0.1"]'
    _cli(env, home, "site", "add", "Fudong", "--tier", "township", "--consortium", "Dongtai", *(site_options or []))
    _cli(env, home, "ae", "add", "FUDONG_CT", "--site", "Fudong", "--address", "127.0.0.1")
    _cli(env, home, "user", "add", "bench-admin", "--role", "admin")
    token_output = _cli(env, home, "token", "create", "--user", "bench-admin")
    token = max(re.findall(r"\S{30,}", token_output), key=len)
    for command in setup or []:
        _cli(env, home, *command)
    world = Topology(home, env)
    try:
        ports = []
        for n in range(2):
            port = free_port()
            extra = ["--no-stability"] if n else []
            receiver = world.spawn(
                f"receiver-{n + 1}", [str(YUNYING), "receiver", *extra], {**env, "YUNYING_DICOM_PORT": str(port)}
            )
            _wait_port(port, receiver, f"receiver {n + 1}")
            world.receivers.append(receiver)
            ports.append(port)
        world.dicom_port = free_port()
        config = home / "haproxy.cfg"
        servers = "\n".join(f"    server r{i} 127.0.0.1:{p} send-proxy-v2" for i, p in enumerate(ports))
        config.write_text(
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 120s\n    timeout server 120s\n"
            f"frontend dicom\n    bind 127.0.0.1:{world.dicom_port}\n    default_backend receivers\n"
            f"backend receivers\n    balance roundrobin\n{servers}\n"
        )
        balancer = world.spawn("haproxy", ["haproxy", "-f", str(config), "-db"], env)
        _wait_port(world.dicom_port, balancer, "haproxy")
        for n in range(webs):
            http_port = free_port()
            web = world.spawn(f"web-{n + 1}", [str(YUNYING), "web"], {**env, "YUNYING_HTTP_PORT": str(http_port)})
            _wait_port(http_port, web, f"yunying web {n + 1}")
            world.webs.append(web)
            world.web_urls.append(f"http://127.0.0.1:{http_port}")
        world.web_url, world.token = world.web_urls[0] if world.web_urls else "", token
        if web_balancer:
            world.web_url = _web_balancer(world, env)
        for n in range(ai_workers):
            world.ai_workers.append(world.spawn(f"ai-{n + 1}", [str(YUNYING), "worker", "ai"], env))
        if reading_worker:
            world.spawn("reading-worker", [str(YUNYING), "worker", "reading"], env)
        if delivery_worker:
            world.spawn("delivery-worker", [str(YUNYING), "worker", "delivery"], env)
        yield world
    finally:
        world.stop()


def _web_balancer(world: Topology, env: dict[str, str]) -> str:
    """HAProxy in HTTP mode in front of the web processes, as nginx is in docker/: TLS ends here
    (a server certificate of the consortium CA), the client's address goes on in X-Forwarded-For,
    a web process that stops answering /readyz is taken out within a second, and a GET whose
    connection died before any answer is retried on the other one (never a POST: it may have
    been done)."""
    home = world.home
    _cli(env, home, "pki", "init", "--consortium", "Dongtai")
    _cli(env, home, "pki", "issue-server", "--host", "127.0.0.1")
    pki = home / "pki"
    bundle = home / "web-tls.pem"
    bundle.write_bytes((pki / "server.pem").read_bytes() + (pki / "server.key").read_bytes())
    bundle.chmod(0o600)
    port = free_port()
    servers = "\n".join(
        f"    server w{i} {url.removeprefix('http://')} check inter 300ms fall 2 rise 2"
        for i, url in enumerate(world.web_urls)
    )
    config = home / "haproxy-web.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n"
        "    retries 3\n    option redispatch 1\n"
        f"frontend https\n    bind 127.0.0.1:{port} ssl crt {bundle}\n    option forwardfor\n"
        "    http-request set-header X-Forwarded-Proto https\n    default_backend webs\n"
        # A check may take 2 s: without "timeout check" it is the 300 ms interval, and under a
        # full ingest load both webs' /readyz (index + store) ran longer, so HAProxy took both
        # out and answered 503 (seen in test_load). A killed web is still out in ≈ 0.6 s: its
        # refused connection fails the check at once.
        "backend webs\n    balance roundrobin\n    option httpchk GET /readyz\n    timeout check 2s\n"
        "    http-response set-header X-Served-By %[srv_name]\n"
        "    retry-on conn-failure empty-response response-timeout\n"
        "    http-request disable-l7-retry unless METH_GET || METH_HEAD\n"
        f"{servers}\n"
    )
    balancer = world.spawn("haproxy-web", ["haproxy", "-f", str(config), "-db"], env)
    _wait_port(port, balancer, "haproxy (web)")
    world.verify = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    return f"https://127.0.0.1:{port}"


def send_study(port: int, files: list[Path]) -> dict[str, Any]:
    """One sender: dcmtk's storescu, one association, every file. The wait for each Success is
    timed from storescu's own log lines ("Sending Store Request" → "Received Store Response"),
    read as they come."""
    sender = subprocess.Popen(
        ["storescu", "-v", "-aet", "FUDONG_CT", "-aec", "YUNYING", "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    latencies: list[float] = []
    statuses: list[str] = []
    succeeded = 0
    sent_at: float | None = None
    assert sender.stdout is not None
    for line in sender.stdout:
        if "Sending Store Request" in line:
            sent_at = time.perf_counter()
        elif "Received Store Response" in line:
            if sent_at is not None:
                latencies.append(time.perf_counter() - sent_at)
            if "(Success)" in line:
                succeeded += 1
            else:
                statuses.append(line.split("Received Store Response", 1)[1].strip())
        elif line.startswith("E:"):
            statuses.append(line.strip())
    sender.wait(60)
    sender.stdout.close()
    return {"latencies": latencies, "failures": len(files) - succeeded, "statuses": statuses}


def web_client(
    url: str,
    token: str,
    study_uid: str,
    stop: threading.Event,
    out: dict[str, Any],
    verify: ssl.SSLContext | bool = True,
) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30, verify=verify) as client:
        metadata = client.get(f"/dicomweb/studies/{study_uid}/metadata").json()
        first = metadata[0]
        series, sop = first["0020000E"]["Value"][0], first["00080018"]["Value"][0]
        kinds = [
            ("qido", "/dicomweb/studies", {"limit": "20"}),
            ("metadata", f"/dicomweb/studies/{study_uid}/metadata", None),
            ("frame", f"/dicomweb/studies/{study_uid}/series/{series}/instances/{sop}/frames/1", None),
        ]
        while not stop.is_set():
            for kind, path, params in kinds:
                started = time.perf_counter()
                accept = {"Accept": "multipart/related; type=application/octet-stream"} if kind == "frame" else {}
                answer = client.get(path, params=params, headers=accept)
                out.setdefault(kind, []).append(time.perf_counter() - started)
                if answer.status_code != 200:
                    out.setdefault("errors", []).append(f"{kind} {answer.status_code}")


def verify_index(database_url: str | None, home: Path, sent: list[list[Path]]) -> dict[str, int]:
    from sqlalchemy import create_engine, func, select

    from pacs.index.models import Instance

    engine = create_engine(database_url or f"sqlite:///{home / 'yunying.db'}")
    try:
        with engine.connect() as connection:
            rows = dict(connection.execute(select(Instance.sop_instance_uid, Instance.sha256)).all())
            duplicates = connection.execute(
                select(func.count()).select_from(
                    select(Instance.sop_instance_uid)
                    .group_by(Instance.sop_instance_uid)
                    .having(func.count() > 1)
                    .subquery()
                )
            ).scalar_one()
    finally:
        engine.dispose()
    import pydicom

    missing = wrong = 0
    for files in sent:
        for path in files:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            if uid not in rows:
                missing += 1
            elif rows[uid] != dataset_sha256(path):
                wrong += 1
    return {"missing": missing, "wrong_sha256": wrong, "duplicated": int(duplicates)}


def run_load(
    workdir: Path,
    *,
    senders: int = 8,
    slices: int = 300,
    size: int = 512,
    web_clients: int = 4,
    database_url: str | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    load = studies(cache or workdir / "data", senders + 1, slices, size)
    warmup, sent = load[0][:4], load[1:]
    with topology(workdir / "var", database_url, webs=2, web_balancer=True) as world:
        ok = send_study(world.dicom_port, warmup)
        if ok["failures"]:
            raise RuntimeError(f"the warm-up study failed: {ok['statuses']}")
        warm_uid = str(synthetic_uid(warmup[0]))
        stop, results = threading.Event(), [dict[str, Any]() for _ in range(web_clients)]
        threads = [
            threading.Thread(
                target=web_client, args=(world.web_url, world.token, warm_uid, stop, out, world.verify), daemon=True
            )
            for out in results
        ]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        outcomes: list[dict[str, Any]] = [{} for _ in sent]

        def send(index: int, files: list[Path]) -> None:
            outcomes[index] = send_study(world.dicom_port, files)

        senders_threads = [threading.Thread(target=send, args=(i, files)) for i, files in enumerate(sent)]
        for thread in senders_threads:
            thread.start()
        for thread in senders_threads:
            thread.join()
        elapsed = time.perf_counter() - started
        stop.set()
        for thread in threads:
            thread.join(60)
        rss_mb = [vm_hwm_kb(r.pid) / 1024 for r in world.receivers]
    checked = verify_index(database_url, workdir / "var", [warmup, *sent])
    latencies = [x for o in outcomes for x in o["latencies"]]
    instances = senders * slices
    web: dict[str, Any] = {}
    for kind in ("qido", "metadata", "frame"):
        values = [x for out in results for x in out.get(kind, [])]
        web[kind] = {"n": len(values), "p50_ms": _ms(percentile(values, 50)), "p95_ms": _ms(percentile(values, 95))}
    return {
        "senders": senders,
        "slices": slices,
        "size": size,
        "instances": instances,
        "seconds": round(elapsed, 2),
        "images_per_s": round(instances / elapsed, 1),
        "success_wait_ms": {"p50": _ms(percentile(latencies, 50)), "p95": _ms(percentile(latencies, 95))},
        "failures": sum(o["failures"] for o in outcomes),
        "failure_statuses": sorted({s for o in outcomes for s in o["statuses"]}),
        "receiver_peak_rss_mb": [round(x, 1) for x in rss_mb],
        "web": web,
        "web_errors": [e for out in results for e in out.get("errors", [])][:20],
        **checked,
    }


def synthetic_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def postgres_database() -> tuple[str, Any]:
    from sqlalchemy import create_engine, text

    name = f"yunying_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--web-clients", type=int, default=4)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    args = parser.parse_args()
    drop = None
    url = None
    if args.database == "postgres":
        url, drop = postgres_database()
    try:
        with tempfile.TemporaryDirectory(prefix="yunying-load-") as folder:
            print(
                f"{args.senders} senders × {args.slices}-slice {args.size}² CT through HAProxy, "
                f"{args.web_clients} web clients…"
            )
            figures = run_load(
                Path(folder),
                senders=args.senders,
                slices=args.slices,
                size=args.size,
                web_clients=args.web_clients,
                database_url=url,
                cache=Path(tempfile.gettempdir()) / "yunying-load-cache",
            )
    finally:
        if drop:
            drop()
    figures.update(database=args.database, machine=platform.platform(), cpus=os.cpu_count())
    print(json.dumps(figures, indent=2))
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"reliability-{dt.datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
