"""Shared fixtures: real parts on loopback — PostgreSQL, moto's S3 server, a running receiver.

Each test gets a fresh index (a new SQLite file, or a freshly emptied PostgreSQL database) and
a fresh object store (a new folder, or a new bucket). Timeouts are short: tests wait by polling
the changes table, never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from ai_models import records as ai_records  # noqa: F401  (its tables join Base.metadata: migrations, truncation)
from pacs.dimse.receiver import Receiver
from pacs.identity.sites import add_site, add_site_ae
from pacs.index.db import transaction
from pacs.index.migrate import upgrade
from pacs.index.models import Base, Change
from pacs.service import Services, build_services
from pacs.settings import Settings, StorageBackend
from reading import models as reading_models  # noqa: F401  (its tables join Base.metadata: migrations, truncation)
from reading.qa import models as qa_models  # noqa: F401  (the same for the derived QA tables)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("YUNYING_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate`` returns something truthy; fail the test with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One throw-away database on the machine's PostgreSQL for the session, migrated."""
    name = f"yunying_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is needed (start it: see README): {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An index URL with nothing in it, not even a schema (migration tests): SQLite, then a
    throw-away PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.db'}"
        return
    name = f"yunying_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_pg(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


# ---------------------------------------------------------------- S3 (moto)


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    port = free_port()
    process = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"127.0.0.1:{port}"

    def up() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(up, timeout=30)
    server = MotoServer(process, endpoint)
    yield server
    server.thaw()
    process.terminate()
    process.wait(10)


# ---------------------------------------------------------------- settings and services


BACKENDS = ["sqlite-folder", "postgres-s3"]


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings for one test: ``backend`` is one of BACKENDS; extra keywords override."""

    def build(backend: str = "sqlite-folder", **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "var",
            "dicom_host": "127.0.0.1",
            "dicom_port": 0,
            "acse_timeout_s": 2,
            "dimse_timeout_s": 5,
            "network_timeout_s": 5,
            "socket_idle_timeout_s": 2,
            "pdu_deadline_s": 5,
            "stability_seconds": 1.0,
            "stability_poll_s": 0.2,
            "s3_connect_timeout_s": 1,
            "s3_read_timeout_s": 2,
            "s3_retries": 0,
            "orphan_grace_s": 0,
            "ae_cache_s": 0,
        }
        if backend == "postgres-s3":
            pg_url = request.getfixturevalue("pg_database")
            empty_pg(pg_url)
            moto = request.getfixturevalue("moto_server")
            values.update(
                database_url=pg_url,
                storage_backend=StorageBackend.S3,
                s3_endpoint=moto.endpoint,
                s3_bucket=f"t-{uuid.uuid4().hex[:12]}",
                s3_access_key="test",
                s3_secret_key="test",
            )
        values.update(overrides)
        settings = Settings(**values)
        if not settings.database_url:
            upgrade(settings.resolved_database_url)
        return settings

    return build


@pytest.fixture
def make_services(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Services]]:
    built: list[Services] = []

    def build(backend: str = "sqlite-folder", **overrides: Any) -> Services:
        services = build_services(make_settings(backend, **overrides))
        built.append(services)
        return services

    yield build
    for services in built:
        services.close()


@dataclass
class Fixture:
    """A running receiver with its services and a demo site whose AEs are allowed from 127.0.0.1."""

    services: Services
    receiver: Receiver
    site_id: int

    @property
    def port(self) -> int:
        return self.receiver.port

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def session(self) -> Session:
        return self.services.sessions()

    def changes(self, kind: str | None = None) -> list[Change]:
        with transaction(self.services.sessions) as session:
            query = select(Change).order_by(Change.seq)
            if kind:
                query = query.where(Change.kind == kind)
            return list(session.scalars(query))


def add_demo_site(
    services: Services,
    *,
    name: str = "Fudong Health Centre",
    aes: tuple[tuple[str, str, str | None], ...] = (
        ("FUDONG_CT", "127.0.0.1", "GB18030"),
        ("FUDONG_DR", "127.0.0.1", None),
    ),
) -> int:
    with transaction(services.sessions) as session:
        site = add_site(
            session,
            consortium="Dongtai",
            name=name,
            tier="township",
            return_ae_title="FUDONG_PACS",
            return_host="127.0.0.1",
            return_port=11121,
        )
        for title, address, charset in aes:
            add_site_ae(session, site=site, ae_title=title, allowed_address=address, assumed_charset=charset)
        return site.id


@pytest.fixture
def start_receiver(make_services: Callable[..., Services]) -> Iterator[Callable[..., Fixture]]:
    receivers: list[Receiver] = []

    def start(backend: str = "sqlite-folder", **overrides: Any) -> Fixture:
        services = make_services(backend, **overrides)
        site_id = add_demo_site(services)
        receiver = Receiver(services.settings, services.ingest, services.sessions)
        receiver.start()
        receivers.append(receiver)
        return Fixture(services, receiver, site_id)

    yield start
    for receiver in receivers:
        receiver.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres-s3":
        request.applymarker(pytest.mark.postgres)
    return str(request.param)


# ---------------------------------------------------------------- data


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def chunked_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom sends a file's data set bytes unchanged (no pydicom re-encoding on the way)
    only in its chunked mode: what a test needs to send malformed or odd data as it is."""
    from pynetdicom import _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


def storescu(
    port: int,
    files: list[Path] | Path,
    *,
    calling: str = "FUDONG_CT",
    called: str = "YUNYING",
    nodelay: bool = True,
    extra: list[str] | None = None,
    timeout: float = 120,
) -> tuple[int, int, str]:
    """Run dcmtk's storescu; returns (successes, failures, output). Its exit code is 0 even when
    instances fail, so the per-instance responses are counted from ``-v`` output."""
    args = ["storescu", "-v", "-aet", calling, "-aec", called, *(extra or []), "127.0.0.1", str(port)]
    args += [str(p) for p in (files if isinstance(files, list) else [files])]
    env = {**os.environ, "TCP_NODELAY": "1"} if nodelay else dict(os.environ)
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    output = done.stdout + done.stderr
    ok = output.count("Received Store Response (Success)")
    failed = output.count("Received Store Response") - ok
    return ok, failed, output


def storescu_until(port: int, files: list[Path], successes: int, interrupt: Callable[[], Any]) -> list[Path]:
    """dcmtk's storescu sending ``files``; once ``successes`` of them were answered Success, call
    ``interrupt()`` (kill the receiver, say) and stop the sender. Returns the files answered
    Success, in order."""
    sender = subprocess.Popen(
        ["storescu", "-v", "-aet", "FUDONG_CT", "-aec", "YUNYING", "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    acknowledged: list[Path] = []
    sending: Path | None = None
    assert sender.stdout is not None
    for line in sender.stdout:
        if "Sending file:" in line:
            sending = Path(line.split("Sending file:", 1)[1].strip())
        elif "Received Store Response (Success)" in line:
            assert sending is not None
            acknowledged.append(sending)
            if len(acknowledged) == successes:
                interrupt()
                break
    sender.kill()
    sender.wait(10)
    sender.stdout.close()
    return acknowledged


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: apt-get install dcmtk (README lists system packages)")


# ---------------------------------------------------------------- the receiver as a process


@dataclass
class ReceiverProcess:
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log: Path
    log_handle: Any

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.log_handle.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log_handle.close()


def yunying(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``yunying`` command as a user would."""
    done = subprocess.run([str(VENV_BIN / "yunying"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"yunying {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def receiver_env(home: Path, **settings: Any) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("YUNYING_")}
    env.update(
        {
            "YUNYING_HOME": str(home),
            "YUNYING_DICOM_HOST": "127.0.0.1",
            "YUNYING_LOG_LEVEL": "INFO",
            "YUNYING_ACSE_TIMEOUT_S": "2",
            "YUNYING_NETWORK_TIMEOUT_S": "5",
            "YUNYING_DIMSE_TIMEOUT_S": "5",
        }
    )
    env.update({f"YUNYING_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def spawn_receiver(env: dict[str, str], log: Path, *args: str) -> ReceiverProcess:
    """Start ``yunying receiver`` on a free port and wait until it accepts connections."""
    port = free_port()
    env = {**env, "YUNYING_DICOM_PORT": str(port)}
    handle = open(log, "ab")
    process = subprocess.Popen([str(VENV_BIN / "yunying"), "receiver", *args], env=env, stdout=handle, stderr=handle)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"receiver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=30)
    return ReceiverProcess(process, port, env, log, handle)
