"""The AI world on a real index: a site, small synthetic studies ingested through ``pacs`` and
made stable (which queues their ``ai.prescreen`` jobs), a registry built by the test, and a
worker with short timeouts."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ai_models.registry import DEFAULT_REGISTRY, Registry, RegistryEntry
from ai_models.settings import AISettings
from ai_models.worker import AiWorker
from pacs.identity.sites import add_site
from pacs.index.db import transaction
from pacs.index.models import Change, Job, Study
from pacs.ingest import Origin
from pacs.service import Services
from pacs.stability import mark_stable_studies
from tests.pacs.helpers import write_ct, write_dx

QC = Registry.from_file(DEFAULT_REGISTRY).get("image-qc")
ROOT = Path(__file__).resolve().parents[2]
# The worker's model process imports the fake models by name ("tests.ai_models.fakes:…"); it
# gets this process's sys.path when its server starts, and pytest's importlib mode does not put
# the repository root there.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def fake_entry(name: str, factory: str, **fields: Any) -> RegistryEntry:
    """A registry entry for a model of tests/ai_models/fakes.py."""
    values: dict[str, Any] = {
        "name": name,
        "version": "0.1",
        "kind": "rules",  # no weights to check: the fakes have none
        "modalities": ["CT", "DX", "CR"],
        "card": "cards/none.md",
        "factory": f"tests.ai_models.fakes:{factory}",
    }
    values.update(fields)
    return RegistryEntry.model_validate(values)


@dataclass
class AiWorld:
    services: Services
    data: Path
    site_id: int
    workers: list[AiWorker] = field(default_factory=list)

    def ingest(self, *, kind: str = "head", slices: int = 4, seed: int = 1, dx: bool = False) -> str:
        """Ingest a small synthetic CT (or a chest DX) for the site; returns its Study UID."""
        if dx:
            paths = [write_dx(self.data / f"dx-{seed}", seed=seed, size=64)]
        else:
            paths = write_ct(self.data / f"ct-{kind}-{seed}-{slices}", slices=slices, seed=seed, size=32, kind=kind)
        origin = Origin(site_id=self.site_id, calling_ae="FUDONG_CT", source_address="127.0.0.1")
        uid = ""
        for path in paths:
            outcome = self.services.ingest.receive(path, origin)
            assert outcome.accepted, outcome
            uid = outcome.study_uid or uid
        return uid

    def stable(self) -> list[str]:
        """Mark every ingested study stable now (queues their pre-screen jobs)."""
        return mark_stable_studies(self.services.sessions, timedelta(0))

    def worker(self, registry: Registry | None = None, **settings: Any) -> AiWorker:
        values: dict[str, Any] = {"threads": 1, "model_timeout_s": 20, "lease_s": 30, "poll_s": 0.1}
        values.update(settings)
        worker = AiWorker(self.services, AISettings(**values), registry or Registry([QC], DEFAULT_REGISTRY.parent))
        self.workers.append(worker)
        return worker

    def changes(self, kind: str | None = None, study_uid: str | None = None) -> list[Change]:
        with transaction(self.services.sessions) as session:
            query = select(Change).order_by(Change.seq)
            if kind:
                query = query.where(Change.kind == kind)
            if study_uid:
                query = query.where(Change.study_uid == study_uid)
            return list(session.scalars(query))

    def jobs(self, kind: str = "ai.prescreen") -> list[Job]:
        with transaction(self.services.sessions) as session:
            return list(session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))

    def study(self, uid: str) -> Study:
        with transaction(self.services.sessions) as session:
            return session.scalars(select(Study).where(Study.study_uid == uid)).one()


@pytest.fixture
def make_ai_world(make_services: Callable[..., Services], data_cache: Path) -> Iterator[Callable[..., AiWorld]]:
    worlds: list[AiWorld] = []

    def build(backend: str = "sqlite-folder", **overrides: Any) -> AiWorld:
        services = make_services(backend, **overrides)
        with transaction(services.sessions) as session:
            site = add_site(session, consortium="Dongtai", name="Fudong", tier="township")
            site_id = site.id
        world = AiWorld(services, data_cache, site_id)
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        for worker in world.workers:
            worker.runner.close()
