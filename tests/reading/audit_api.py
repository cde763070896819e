"""A served application with the users an audit test signs in as: the world's readers plus QA
staff of two consortiums (Dongtai, and Xiyang with a clinic of its own), a Dongtai admin and an
installation admin, each with a bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from pacs.identity.sites import add_site
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from reading.settings import ReadingSettings
from tests.dicomweb.conftest import served
from tests.reading.world import World
from viewer.app import create_app

# username → (role, consortium); None: an installation admin
AUDIT_USERS: dict[str, tuple[str, str | None]] = {
    "qa": ("qa", "Dongtai"),
    "qa-xiyang": ("qa", "Xiyang"),
    "admin": ("admin", "Dongtai"),
    "root": ("admin", None),
}


@dataclass
class Api:
    world: World
    url: str
    tokens: dict[str, str]

    def get(self, who: str | None, path: str, **params: Any) -> httpx.Response:
        """A GET as ``who`` (None: without credentials)."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.get(f"{self.url}{path}", headers=headers, params=params, timeout=30)


@contextmanager
def audit_api(world: World, readers: tuple[str, ...]) -> Iterator[Api]:
    """The world's application served, with tokens for ``readers`` (already in the world) and
    the audit users above."""
    tokens = {}
    with transaction(world.services.sessions) as session:
        add_site(session, consortium="Xiyang", name="Xiyang Clinic", tier="township")
        for username, (role, consortium) in AUDIT_USERS.items():
            add_user(session, username=username, role=role, consortium=consortium)
        for name in (*readers, *AUDIT_USERS):
            tokens[name] = create_token(session, find_user(session, name))[1]
    with served(create_app(world.services, ReadingSettings(reading_lease_s=60))) as url:
        yield Api(world, url, tokens)
