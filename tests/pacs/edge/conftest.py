"""The clinic edge against a real centre on loopback: the centre in this process (receiver, web,
reading and the delivery worker of ``yunying serve``), the edge as a real ``yunying edge serve``
process (so a test can SIGKILL it), the line between them a test-owned proxy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ai_models.settings import AISettings
from pacs.identity.sites import add_site, add_site_ae
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Change, Instance, Series, Study
from pacs.service import Services
from reading.admin import add_reader, set_roster
from reading.settings import ReadingSettings
from tests.conftest import VENV_BIN, free_port, require, wait_for
from tests.reading.world import ALWAYS
from tests.tcp_proxy import LinkShape, TcpProxy
from viewer.serve import EmbeddedService

EDGE_AE = "FUDONG_EDGE"
MODALITY_AE = "FUDONG_CT"


@dataclass
class Centre:
    services: Services
    service: EmbeddedService
    url: str
    tokens: dict[str, str]
    site_id: int

    @property
    def dicom_port(self) -> int:
        return self.services.settings.dicom_port

    @property
    def http_port(self) -> int:
        return self.services.settings.http_port

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30, **kwargs
        )

    def instances(self, study_uid: str) -> list[Instance]:
        with transaction(self.services.sessions, read_only=True) as session:
            return list(
                session.scalars(
                    select(Instance)
                    .join(Series, Series.id == Instance.series_pk)
                    .join(Study, Study.id == Series.study_pk)
                    .where(Study.study_uid == study_uid)
                )
            )

    def changes(self, study_uid: str | None = None, kind: str | None = None) -> list[Change]:
        with transaction(self.services.sessions, read_only=True) as session:
            query = select(Change).order_by(Change.seq)
            if study_uid:
                query = query.where(Change.study_uid == study_uid)
            if kind:
                query = query.where(Change.kind == kind)
            return list(session.scalars(query))


@pytest.fixture
def centre(make_services: Callable[..., Services]) -> Iterator[Centre]:
    require("storescu")
    services = make_services(
        dicom_port=free_port(),
        http_port=free_port(),
        stability_seconds=1.0,
        stability_poll_s=0.2,
        dimse_timeout_s=10,
        network_timeout_s=10,
        socket_idle_timeout_s=10,
        pdu_deadline_s=20,
    )
    with transaction(services.sessions) as session:
        site = add_site(session, consortium="Dongtai", name="Fudong", tier="township")
        site.held_for_manifest = True
        add_site_ae(session, site=site, ae_title=EDGE_AE, allowed_address="127.0.0.1")
        add_reader(session, username="li", consortium="Dongtai", tier="county", modalities=["CT"])
        set_roster(session, "li", ALWAYS)
        add_user(session, username="fudong-edge", role="site", site="Fudong", is_service=True)
        tokens = {name: create_token(session, find_user(session, name))[1] for name in ("li", "fudong-edge")}
        site_id = site.id
    reading = ReadingSettings(reading_ai_timeout_s=1, reading_sweep_poll_s=0.2, delivery_poll_s=0.2)
    service = EmbeddedService(services, reading, AISettings(in_service=False))
    service.start()
    try:
        yield Centre(services, service, f"http://127.0.0.1:{services.settings.http_port}", tokens, site_id)
    finally:
        service.stop()


@dataclass
class EdgeProcess:
    home: Path
    env: dict[str, str]
    port: int
    status_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    handle: Any = None
    proxies: list[TcpProxy] = field(default_factory=list)

    def start(self) -> EdgeProcess:
        self.handle = open(self.log, "ab")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "yunying"), "edge", "serve"], env=self.env, stdout=self.handle, stderr=self.handle
        )
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"edge exited with {process.returncode}:\n{self.log.read_text()[-3000:]}")
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, timeout=60)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.handle.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.handle is not None:
            self.handle.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "yunying"), "edge", *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def status(self) -> list[dict[str, Any]]:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def study(self, study_uid: str) -> dict[str, Any] | None:
        return next((s for s in self.status() if s["study_uid"] == study_uid), None)


@pytest.fixture
def make_edge(tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    """``make_edge(centre, shape=LinkShape(...), **settings)``: an edge (not started) whose DICOM
    and HTTP traffic to the centre crosses one test-owned proxy each, shaped alike."""
    edges: list[EdgeProcess] = []

    def build(centre: Centre, shape: LinkShape | None = None, start: bool = True, **settings: Any) -> EdgeProcess:
        dicom_proxy = TcpProxy(("127.0.0.1", centre.dicom_port), shape).start()
        http_proxy = TcpProxy(("127.0.0.1", centre.http_port), shape).start()
        home = tmp_path / f"edge{len(edges)}"
        port, status_port = free_port(), free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("YUNYING_")}
        values: dict[str, Any] = {
            "home": home,
            "site_name": "Fudong",
            "ae_title": EDGE_AE,
            "dicom_host": "127.0.0.1",
            "dicom_port": port,
            "modalities": json.dumps([f"{MODALITY_AE}@127.0.0.1"]),
            "stability_seconds": 1,
            "stability_poll_s": 0.2,
            "centre_host": "127.0.0.1",
            "centre_port": dicom_proxy.port,
            "centre_ae_title": centre.services.settings.ae_title,
            "centre_url": f"http://127.0.0.1:{http_proxy.port}",
            "site_token": centre.tokens["fudong-edge"],
            "retry_initial_s": 0.5,
            "retry_max_s": 3,
            "connect_timeout_s": 3,
            "dimse_timeout_s": 15,
            "http_timeout_s": 15,
            "reports_poll_s": 0.5,
            "status_port": status_port,
            "idle_release_s": 3,
        }
        values.update(settings)
        env.update({f"YUNYING_EDGE_{key.upper()}": str(value) for key, value in values.items()})
        edge = EdgeProcess(
            home, env, port, status_port, tmp_path / f"edge{len(edges)}.log", proxies=[dicom_proxy, http_proxy]
        )
        edges.append(edge)
        return edge.start() if start else edge

    yield build
    for edge in edges:
        edge.stop()
        for proxy in edge.proxies:
            proxy.close()
