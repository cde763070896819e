#!/usr/bin/env python
"""DICOMweb (and C-FIND) latency on a realistic index: QIDO, metadata, frames, rendered.

For each index (SQLite file, PostgreSQL throw-away database ``yunying_bench_<random>``) this:

1. migrates a fresh index and adds a site and its AE with the ``yunying`` CLI;
2. starts a real ``yunying serve`` (receiver + web, YUNYING_LOG_LEVEL=WARNING) and sends it one
   synthetic 300-slice 512×512 CT by dcmtk ``storescu`` (TCP_NODELAY=1): the study that is read;
3. stops it and loads the filler straight into the index with Core bulk inserts: ``--studies``
   studies (default 10,000; a third are CTs of ~300 instances, the rest radiographs of 1–3),
   about a million instance rows in all, each with a DICOM JSON header (the real CT's header
   with its UIDs changed) — then ANALYZE;
4. starts ``yunying serve`` again and measures with httpx clients in threads:
   * QIDO study searches (five realistic kinds in rotation: patient ID, Chinese name wildcard,
     a month of dates, CT in a month, the default first page) — p50/p95;
   * the series metadata of the 300-slice CT — p50/p95;
   * single-frame retrieval (512×512×16 bit, as stored) — p50/p95 with one client, and frames/s
     with 1 and 8 concurrent clients;
   * a rendered frame (JPEG, the header's window) — p50/p95;
   * C-FIND at study level, N queries within one association (pynetdicom SCU, TCP_NODELAY) —
     when the service answers C-FIND.

The clients run on the same 2 cores as the server: the figures include their cost. Results go
to bench/results/dicomweb-<timestamp>.json; docs/performance.md has the figures and this command.

    .venv/bin/python bench/dicomweb.py                          # both indexes, 10,000 studies
    .venv/bin/python bench/dicomweb.py --index sqlite --studies 1000 --requests 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from sqlalchemy import create_engine, insert, select, text  # noqa: E402

from pacs.index.models import Instance, Patient, Series, Study  # noqa: E402

console = Console()
VENV_BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("YUNYING_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- the service


class Service:
    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "YUNYING_HOME": str(home),
            "YUNYING_DATABASE_URL": database_url,
            "YUNYING_LOG_LEVEL": "WARNING",
            "YUNYING_DICOM_HOST": "127.0.0.1",
            "YUNYING_STABILITY_SECONDS": "2",
            # DICOMweb is measured, not the AI pre-screen (it would add its series to the CT).
            "YUNYING_AI_IN_SERVICE": "false",
            "COLUMNS": "200",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.dicom_port = 0

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "yunying"), *args], env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"yunying {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    @contextmanager
    def running(self) -> Iterator[Service]:
        self.http_port, self.dicom_port = free_port(), free_port()
        env = {**self.env, "YUNYING_HTTP_PORT": str(self.http_port), "YUNYING_DICOM_PORT": str(self.dicom_port)}
        log = open(self.home / "serve.log", "ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "yunying"), "serve"], env=env, stdout=log, stderr=log)
        wait_until_up(f"http://127.0.0.1:{self.http_port}/readyz", self.proc, "yunying serve", self.home / "serve.log")
        try:
            yield self
        finally:
            self.proc.terminate()
            self.proc.wait(30)
            log.close()


def wait_until_up(url: str, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 60) -> None:
    """Until ``url`` answers 200; exits naming the log if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start; see {log}")
        time.sleep(0.2)


def send_ct(service: Service, files: list[Path]) -> None:
    env = {**os.environ, "TCP_NODELAY": "1"}
    done = subprocess.run(
        ["storescu", "-v", "-aet", "BENCH_CT", "-aec", "YUNYING", "127.0.0.1", str(service.dicom_port)]
        + [str(path) for path in files],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    ok = (done.stdout + done.stderr).count("Received Store Response (Success)")
    if ok != len(files):
        raise SystemExit(f"storescu stored {ok} of {len(files)}:\n{done.stderr[-2000:]}")


def wait_until_stable(database_url: str, timeout: float = 120) -> None:
    """Until the CT is stable: its JSON headers are then built (pacs/headers.py), and the
    measurements do not overlap that work."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.scalar(select(Study.state)) == "stable":
                    return
            time.sleep(0.5)
        raise SystemExit("the CT did not turn stable")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the filler


def load_filler(database_url: str, studies: int, site_id: int, template: dict[str, Any], seed: int = 7) -> int:
    """Bulk-insert ``studies`` studies (a third CTs of ~300 instances); returns instances added."""
    rng = random.Random(seed)
    engine = create_engine(database_url)
    instances = 0
    body = json.dumps(template)
    start = dt.date(2024, 1, 1)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("loading the filler index", total=studies)
        with engine.begin() as connection:
            first_id = (connection.scalar(select(Study.id).order_by(Study.id.desc()).limit(1)) or 0) + 1
            patient_first = (connection.scalar(select(Patient.id).order_by(Patient.id.desc()).limit(1)) or 0) + 1
            series_first = (connection.scalar(select(Series.id).order_by(Series.id.desc()).limit(1)) or 0) + 1
        series_pk = series_first
        batch_rows: list[dict[str, Any]] = []
        connection = engine.connect()
        chunk = connection.begin()  # one transaction per 200 studies: not one fsync per study
        for n in range(studies):
            study_pk, patient_pk = first_id + n, patient_first + n
            ct = n % 3 == 0
            name = rng.choice(SURNAMES) + "^" + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
            date = (start + dt.timedelta(days=rng.randrange(700))).strftime("%Y%m%d")
            study_uid = f"2.25.{rng.getrandbits(100)}"
            series_plan = [rng.randint(280, 320), rng.randint(1, 3)] if ct else [rng.randint(1, 3)]
            connection.execute(
                insert(Patient),
                [{"id": patient_pk, "site_id": site_id, "patient_id": f"P{n:07d}", "patient_name": name}],
            )
            connection.execute(
                insert(Study),
                [
                    {
                        "id": study_pk,
                        "study_uid": study_uid,
                        "site_id": site_id,
                        "patient_pk": patient_pk,
                        "patient_id": f"P{n:07d}",
                        "patient_name": name,
                        "study_date": date,
                        "study_time": "101500",
                        "accession_number": f"A{n:08d}",
                        "modalities": "CT" if ct else "DX",
                        "num_series": len(series_plan),
                        "num_instances": sum(series_plan),
                        "state": "stable",
                    }
                ],
            )
            for number, count in enumerate(series_plan, start=1):
                series_uid = f"{study_uid}.{number}"
                connection.execute(
                    insert(Series),
                    [
                        {
                            "id": series_pk,
                            "study_pk": study_pk,
                            "series_uid": series_uid,
                            "modality": "CT" if ct else "DX",
                            "series_number": number,
                            "num_instances": count,
                        }
                    ],
                )
                for i in range(1, count + 1):
                    sop = f"{series_uid}.{i}"
                    header = body.replace(template_uids["sop"], sop).replace(template_uids["series"], series_uid)
                    header = header.replace(template_uids["study"], study_uid)
                    batch_rows.append(
                        {
                            "series_pk": series_pk,
                            "sop_instance_uid": sop,
                            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2" if ct else "1.2.840.10008.5.1.4.1.1.1.1",
                            "instance_number": i,
                            "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                            "rows": 512,
                            "columns": 512,
                            "object_key": f"filler/{sop}",
                            "size": 525_000,
                            "dataset_offset": 300,
                            "sha256": "0" * 64,
                            "header_sha256": "0" * 64,
                            "pixel_sha256": "0" * 64,
                            "header": json.loads(header),
                        }
                    )
                series_pk += 1
                instances += count
            if len(batch_rows) >= 5000 or n == studies - 1:
                if batch_rows:
                    connection.execute(insert(Instance), batch_rows)
                batch_rows = []
            if n % 200 == 199 or n == studies - 1:
                chunk.commit()
                chunk = connection.begin()
            progress.advance(task)
        chunk.commit()
        connection.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return instances


template_uids: dict[str, str] = {}


# --------------------------------------------------------------------------- measuring


def timed(call: Callable[[], httpx.Response], count: int, check: Callable[[httpx.Response], bool]) -> list[float]:
    """Client-observed seconds per call; the server's own figure (its ``Server-Timing``) is
    collected into ``SERVER_SIDE`` under the same list's id."""
    times, inside = [], []
    for _ in range(count):
        began = time.perf_counter()
        response = call()
        times.append(time.perf_counter() - began)
        if not check(response):
            raise SystemExit(f"unexpected answer {response.status_code}: {response.text[:300]}")
        timing = response.headers.get("server-timing", "")
        if timing.startswith("app;dur="):
            inside.append(float(timing.removeprefix("app;dur=")) / 1000)
    SERVER_SIDE[id(times)] = inside
    return times


SERVER_SIDE: dict[int, list[float]] = {}


def summary(values: list[float]) -> dict[str, float]:
    figures = {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
    }
    inside = SERVER_SIDE.get(id(values))
    if inside:
        figures["server_p50_ms"] = round(statistics.median(inside) * 1000, 2)
        figures["server_p95_ms"] = round(percentile(inside, 95) * 1000, 2)
    return figures


def throughput(make_call: Callable[[httpx.Client, int], httpx.Response], clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def worker(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while time.monotonic() < stop:
                response = make_call(client, n)
                if response.status_code != 200:
                    raise SystemExit(f"frame answer {response.status_code}: {response.text[:200]}")
                n += 1
            counts[index] = n

    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - began)


def c_find_latency(port: int, called: str, count: int) -> list[float] | None:
    from pydicom import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

    ae = AE(ae_title="BENCH_CT")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return None
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    try:
        for n in range(count):
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.PatientID = f"P{(n * 37) % 1000:07d}"
            query.StudyInstanceUID = ""
            query.PatientName = ""
            query.StudyDate = ""
            began = time.perf_counter()
            answers = assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
            statuses = [status.Status for status, _ in answers]
            times.append(time.perf_counter() - began)
            if not statuses or statuses[-1] != 0x0000:
                return None
    finally:
        assoc.release()
    return times


def measure(
    base: str, auth: dict[str, str], dicom: tuple[int, str], ct: dict[str, Any], requests: int, seconds: float
) -> dict[str, Any]:
    """The figures against one server: ``base`` its DICOMweb root, ``dicom`` (port, AE title)."""
    SERVER_SIDE.clear()
    client = httpx.Client(base_url=base, headers=auth, timeout=30)
    results: dict[str, Any] = {}
    queries = [
        {"PatientID": "P0000420"},
        {"PatientName": "王*", "limit": "50"},
        {"StudyDate": "20240301-20240331"},
        {"ModalitiesInStudy": "CT", "StudyDate": "20250101-20250131"},
        {"limit": "100", "includefield": "00081030"},
    ]
    ok = lambda r: r.status_code == 200  # noqa: E731
    for _ in range(5):  # warm the caches
        client.get("/studies", params=queries[0])
    rotation = itertools.cycle(queries)
    qido = timed(lambda: client.get("/studies", params=next(rotation)), requests, ok)
    results["qido_studies"] = summary(qido)
    series_path = f"/studies/{ct['study']}/series/{ct['series']}"
    client.get(f"{series_path}/metadata")
    metadata = timed(lambda: client.get(f"{series_path}/metadata"), requests, ok)
    results["series_metadata_300"] = summary(metadata) | {"bytes": len(client.get(f"{series_path}/metadata").content)}
    sops = ct["sops"]
    accept = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}

    def frame(c: httpx.Client, n: int) -> httpx.Response:
        sop = sops[(n * 7919) % len(sops)]
        return c.get(f"{base}{series_path}/instances/{sop}/frames/1", headers={**auth, **accept})

    counter = iter(range(10**9))
    latencies = timed(lambda: frame(client, next(counter)), requests, ok)
    results["frame_512x512"] = summary(latencies)
    results["frames_per_s_1_client"] = round(throughput(frame, 1, seconds), 1)
    results["frames_per_s_8_clients"] = round(throughput(frame, 8, seconds), 1)
    rendered = timed(
        lambda: client.get(f"{series_path}/instances/{sops[next(counter) % len(sops)]}/rendered"),
        max(10, requests // 2),
        ok,
    )
    results["rendered_frame_jpeg"] = summary(rendered)
    found = c_find_latency(*dicom, requests)
    results["c_find_study"] = summary(found) if found else "not answered (no C-FIND SCP)"
    client.close()
    return results


# --------------------------------------------------------------------------- one index


def run_index(kind: str, args: argparse.Namespace, files: list[Path]) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"yy-dicomweb-{kind}-"))
    pg_name = None
    if kind == "postgres":
        pg_name = f"yunying_bench_{secrets.token_hex(4)}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
    else:
        url = f"sqlite:///{home / 'yunying.db'}"
    try:
        service = Service(home, url)
        service.cli("db", "upgrade")
        service.cli("site", "add", "Bench Health Centre", "--consortium", "Bench", "--tier", "township")
        service.cli("ae", "add", "BENCH_CT", "--site", "Bench Health Centre", "--address", "127.0.0.1")
        token = service.cli("token", "create", "--service", "bench-reader", "--site", "Bench Health Centre").split()[-1]
        with service.running():
            console.print(f"({kind}) sending the 300-slice CT by storescu …")
            send_ct(service, files)
            wait_until_stable(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            site_id = connection.scalar(select(Study.site_id))
            ct_study = connection.scalar(select(Study.study_uid))
            series_uid = connection.scalar(select(Series.series_uid))
            rows = connection.execute(
                select(Instance.sop_instance_uid, Instance.header).order_by(Instance.instance_number)
            ).all()
        engine.dispose()
        template = rows[0][1] or {}
        template_uids.update(study=ct_study, series=series_uid, sop=rows[0][0])
        began = time.monotonic()
        added = load_filler(url, args.studies, site_id, template)
        took = time.monotonic() - began
        console.print(f"({kind}) filler: {args.studies:,} studies, {added:,} instances in {took:.0f} s")
        ct = {"study": ct_study, "series": series_uid, "sops": [r[0] for r in rows]}
        with service.running():
            base = f"http://127.0.0.1:{service.http_port}/dicomweb"
            auth = {"Authorization": f"Bearer {token}"}
            results = measure(base, auth, (service.dicom_port, "YUNYING"), ct, args.requests, args.seconds)
        return {"index": kind, "studies": args.studies + 1, "instances": added + len(rows), **results}
    finally:
        if args.keep:
            console.print(f"kept {home}" + (f" and the PostgreSQL database {pg_name}" if pg_name else ""))
        else:
            shutil.rmtree(home, ignore_errors=True)  # a 10,000-study SQLite index is ~4 GB
        if pg_name and not args.keep:
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def run_orthanc(args: argparse.Namespace, files: list[Path]) -> dict[str, Any] | None:
    """The same figures on Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) holding only the
    300-slice CT: its index is not loaded with the filler, which favours it."""
    executable = shutil.which("Orthanc")
    plugin = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
    if executable is None or not plugin.exists():
        console.print("Orthanc not installed (apt-get install orthanc orthanc-dicomweb): skipped")
        return None
    home = Path(tempfile.mkdtemp(prefix="yy-orthanc-"))
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(home / "db"),
        "IndexDirectory": str(home / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": False,
        "StableAge": 2,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (home / "orthanc.json").write_text(json.dumps(config))
    log = open(home / "orthanc.log", "ab")
    # Orthanc's DICOM layer is dcmtk's: TCP_NODELAY=1 takes its Nagle stalls away (FIELD-NOTES).
    proc = subprocess.Popen(
        [executable, str(home / "orthanc.json")], stdout=log, stderr=log, env={**os.environ, "TCP_NODELAY": "1"}
    )
    try:
        wait_until_up(f"http://127.0.0.1:{http_port}/system", proc, "Orthanc", home / "orthanc.log")
        sent = subprocess.run(
            ["storescu", "-aet", "BENCH_CT", "-aec", "ORTHANC", "127.0.0.1", str(dicom_port)]
            + [str(path) for path in files],
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True,
            check=False,
        )
        if sent.returncode != 0:
            raise SystemExit(f"storescu to Orthanc failed: {sent.stderr[-500:]!r}")
        first = pydicom_uids(files)
        ct = {"study": first[0], "series": first[1], "sops": first[2]}
        results = measure(
            f"http://127.0.0.1:{http_port}/dicom-web", {}, (dicom_port, "ORTHANC"), ct, args.requests, args.seconds
        )
        version = httpx.get(f"http://127.0.0.1:{http_port}/system").json().get("Version", "?")
        return {"index": f"orthanc {version}", "studies": 1, "instances": len(files), **results}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def pydicom_uids(files: list[Path]) -> tuple[str, str, list[str]]:
    import pydicom

    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    headers.sort(key=lambda ds: int(ds.InstanceNumber))
    return str(headers[0].StudyInstanceUID), str(headers[0].SeriesInstanceUID), [h.SOPInstanceUID for h in headers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--studies", type=int, default=10_000, help="filler studies (a third CT of ~300 instances)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per latency figure")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput run")
    parser.add_argument("--keep", action="store_true", help="keep the indexes (temp folder, PostgreSQL database)")
    parser.add_argument("--orthanc", action="store_true", help="also measure Orthanc with the CT alone")
    args = parser.parse_args()

    import ingest as ingest_bench  # bench/ingest.py: the cached synthetic CT

    (study,) = ingest_bench.prepare_studies(1, 300, 512, 512)
    files = list(study.files)
    kinds = ["sqlite", "postgres"] if args.index == "both" else [args.index]
    results = [run_index(kind, args, files) for kind in kinds]
    if args.orthanc:
        orthanc = run_orthanc(args, files)
        if orthanc:
            results.append(orthanc)

    table = Table(title=f"DICOMweb on a {args.studies:,}-study index (2-core machine; clients on the same cores)")
    table.add_column("figure")
    for result in results:
        table.add_column(f"{result['index']} ({result['instances']:,} instances)")
    for key in (
        "qido_studies",
        "series_metadata_300",
        "frame_512x512",
        "frames_per_s_1_client",
        "frames_per_s_8_clients",
        "rendered_frame_jpeg",
        "c_find_study",
    ):
        cells = []
        for result in results:
            value = result[key]
            figure = f"p50 {value['p50_ms']} ms, p95 {value['p95_ms']} ms" if isinstance(value, dict) else str(value)
            if isinstance(value, dict) and "server_p50_ms" in value:
                figure += f" (in server: {value['server_p50_ms']} / {value['server_p95_ms']})"
            cells.append(figure)
        table.add_row(key, *cells)
    console.print(table)
    orthanc = next((r for r in results if str(r["index"]).startswith("orthanc")), None)
    if orthanc:
        for result in results:
            if result is orthanc:
                continue
            ratios = []
            for key in ("qido_studies", "series_metadata_300", "frame_512x512", "rendered_frame_jpeg", "c_find_study"):
                ours, theirs = result[key], orthanc[key]
                if isinstance(ours, dict) and isinstance(theirs, dict):
                    ratios.append(f"{key} {theirs['p50_ms'] / ours['p50_ms']:.1f}×")
            console.print(f"Orthanc p50 ÷ Yunying ({result['index']}) p50: " + ", ".join(ratios))
    out = BENCH / "results" / f"dicomweb-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "argv": sys.argv[1:],
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": results,
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    console.print(f"figures written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
