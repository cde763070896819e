"""Fixtures of the browser-session tests: the reading world (a township and a county site,
readers), people with passwords in each role, and the web application on a real uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pacs.identity.passwords import set_password
from pacs.identity.users import add_user, find_user
from pacs.index.db import transaction
from reading.settings import ReadingSettings
from tests.dicomweb.conftest import served
from tests.reading.world import World, make_world, world_backend  # noqa: F401
from viewer.app import create_app

# login → (password, how add_user makes it; None: a reader of the world already there)
PEOPLE: dict[str, tuple[str, dict[str, Any] | None]] = {
    "li": ("li-reads-CT-2026", None),
    "fudong-tech": ("township-CT-room-7", {"role": "site", "site": "Fudong"}),
    "county-tech": ("county-CT-room-2", {"role": "site", "site": "Dongtai County Hospital"}),
    "qa-officer": ("checks-turnaround-9", {"role": "qa", "consortium": "Dongtai"}),
    "admin": ("runs-the-consortium", {"role": "admin", "consortium": "Dongtai"}),
}


@dataclass
class Web:
    world: World
    url: str

    def browser(self) -> httpx.Client:
        """A client with a cookie jar, as a browser keeps one."""
        return httpx.Client(base_url=self.url, timeout=30)

    def log_in(self, who: str, client: httpx.Client | None = None) -> tuple[httpx.Client, str]:
        """A client logged in as ``who`` and the session's CSRF token."""
        client = client or self.browser()
        answer = client.post("/api/session", json={"login": who, "password": PEOPLE[who][0]})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf_token"]


def add_people(world: World) -> None:
    with transaction(world.services.sessions) as session:
        for login, (password, options) in PEOPLE.items():
            user = add_user(session, username=login, **options) if options else find_user(session, login)
            set_password(session, user, password)


@pytest.fixture
def start_web(make_world: Callable[..., World], world_backend: str) -> Iterator[Callable[..., Web]]:  # noqa: F811
    """``start_web(**settings)``: the world with its people, served with these settings."""
    stack: list[Any] = []

    def start(**settings: Any) -> Web:
        world = make_world(world_backend)
        if settings:
            world.services.settings = world.services.settings.model_copy(update=settings)
        add_people(world)
        context = served(create_app(world.services, ReadingSettings(reading_lease_s=60)))
        url = context.__enter__()
        stack.append(context)
        return Web(world, url)

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def web(start_web: Callable[..., Web]) -> Web:
    return start_web()
