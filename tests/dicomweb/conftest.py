"""Fixtures of the DICOMweb tests: a running receiver, studies sent to it by C-STORE from two
sites, users with tokens, and the web application served by a real uvicorn on loopback."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pydicom
import pytest
import uvicorn
from dicomweb_client.api import DICOMwebClient

from pacs.identity.users import add_user, create_token
from pacs.index.db import transaction
from tests.conftest import Fixture, add_demo_site, free_port, wait_for
from tests.pacs.helpers import small_ct
from tests.pacs.test_receiver import pynetdicom_send
from viewer.app import create_app


@dataclass
class Web:
    fixture: Fixture
    url: str
    tokens: dict[str, str]
    studies: dict[str, pydicom.Dataset]

    def client(self, who: str) -> DICOMwebClient:
        return DICOMwebClient(f"{self.url}/dicomweb", headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def get(self, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.get(f"{self.url}/dicomweb{path}", headers=headers, timeout=10, **kwargs)


def make_study(seed: int, name: str, *, date: str, slices: int = 1) -> list[pydicom.Dataset]:
    first = small_ct(seed=seed)
    first.PatientName = name
    first.StudyDate = date
    first.SpecificCharacterSet = "ISO_IR 192"
    datasets = [first]
    for number in range(2, slices + 1):
        more = copy.deepcopy(first)
        more.SOPInstanceUID = pydicom.uid.generate_uid()
        more.InstanceNumber = number
        datasets.append(more)
    return datasets


@pytest.fixture
def web(start_receiver: Callable[..., Fixture], backend: str) -> Iterator[Web]:
    fixture = start_receiver(backend)
    add_demo_site(fixture.services, name="Anfeng Health Centre", aes=(("ANFENG_CT", "127.0.0.1", None),))
    fudong_chinese = make_study(201, "王^小明", date="20250405", slices=3)
    fudong_latin = make_study(202, "ZHANG^SAN=张^三", date="20240110")
    anfeng = make_study(203, "王^小红", date="20250406")
    assert pynetdicom_send(fixture.port, fudong_chinese + fudong_latin) == [0] * 4
    assert pynetdicom_send(fixture.port, anfeng, calling="ANFENG_CT") == [0]
    tokens = {}
    with transaction(fixture.services.sessions) as session:
        for username, options in {
            "admin": {"role": "admin", "consortium": "Dongtai"},
            "fudong": {"role": "site", "site": "Fudong Health Centre", "is_service": True},
            "anfeng": {"role": "site", "site": "Anfeng Health Centre"},
            "reader": {"role": "reader"},
        }.items():
            user = add_user(session, username=username, **options)  # type: ignore[arg-type]
            tokens[username] = create_token(session, user)[1]
    studies = {"fudong_chinese": fudong_chinese[0], "fudong_latin": fudong_latin[0], "anfeng": anfeng[0]}
    with served(create_app(fixture.services)) as url:
        yield Web(fixture, url, tokens, studies)


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    with running(server) as url:
        yield url


@contextmanager
def served_web(services: Any) -> Iterator[str]:
    """The web server exactly as ``yunying web`` builds it (``viewer.serve.web_server``: proxy
    headers, TLS) for ``services``, on a free port; yields its base URL."""
    from reading.settings import ReadingSettings
    from viewer.serve import web_server

    services.settings = services.settings.model_copy(update={"http_port": free_port()})
    with running(web_server(services, ReadingSettings())) as url:
        yield url


@contextmanager
def running(server: uvicorn.Server) -> Iterator[str]:
    """Run a uvicorn server in a thread until the block ends; yields its base URL."""
    config = server.config
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
