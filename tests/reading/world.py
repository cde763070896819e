"""The reading world on a real index: a consortium with a township and a county site, county and
provincial readers, and studies ingested through ``pacs`` and handed to reading."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pacs.identity.sites import add_site
from pacs.index.db import transaction
from pacs.index.models import Study
from pacs.index.types import utcnow
from pacs.ingest import Origin
from pacs.readiness import mark_ready_for_reading
from pacs.service import Services
from pacs.stability import mark_stable_studies
from reading.admin import WindowSpec, add_reader, set_roster
from reading.models import ReadingTask
from reading.settings import ReadingSettings
from reading.worklist.sweeper import route_pending
from tests.pacs.helpers import write_ct

ALWAYS = [WindowSpec("00:00", "12:00"), WindowSpec("12:00", "00:00")]


@dataclass
class World:
    services: Services
    data: Path
    township_id: int
    county_site_id: int
    reading: ReadingSettings = field(default_factory=lambda: ReadingSettings(reading_lease_s=60))
    seeds: list[int] = field(default_factory=list)

    def ingest_study(self, *, site_id: int | None = None, kind: str = "head", slices: int = 2) -> str:
        """Ingest a small synthetic CT for a site; returns its Study Instance UID."""
        seed = 100 + len(self.seeds)
        self.seeds.append(seed)
        paths = write_ct(self.data / f"ct-{seed}", slices=slices, seed=seed, size=32, kind=kind)
        origin = Origin(site_id=site_id or self.township_id, calling_ae="FUDONG_CT", source_address="127.0.0.1")
        uid = ""
        for path in paths:
            outcome = self.services.ingest.receive(path, origin)
            uid = outcome.study_uid or uid
        assert uid
        return uid

    def ready_study(self, **kwargs: Any) -> str:
        """Ingest, make stable, hand to reading and route: the study's task is queued."""
        uid = self.ingest_study(**kwargs)
        from datetime import timedelta

        mark_stable_studies(self.services.sessions, timedelta(0))
        with transaction(self.services.sessions) as session:
            assert mark_ready_for_reading(session, uid, reason="test", actor="test")
        route_pending(self.services.sessions, demo=False, now=utcnow())
        return uid

    def task_of(self, study_uid: str) -> ReadingTask:
        with transaction(self.services.sessions) as session:
            found = session.scalars(
                select(ReadingTask).where(ReadingTask.study_uid == study_uid).order_by(ReadingTask.id.desc())
            ).first()
            assert found is not None, f"no task for {study_uid}"
            return found

    def study(self, study_uid: str) -> Study:
        with transaction(self.services.sessions) as session:
            return session.scalars(select(Study).where(Study.study_uid == study_uid)).one()

    def now(self) -> datetime:
        return utcnow()


@pytest.fixture(params=["sqlite-folder", pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def world_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_world(make_services: Callable[..., Services], data_cache: Path) -> Iterator[Callable[..., World]]:
    def build(backend: str = "sqlite-folder", *, county_on_duty: bool = True) -> World:
        services = make_services(backend)
        with transaction(services.sessions) as session:
            township = add_site(
                session,
                consortium="Dongtai",
                name="Fudong",
                tier="township",
                return_ae_title="FUDONG_PACS",
                return_host="127.0.0.1",
                return_port=1,
            )
            county = add_site(session, consortium="Dongtai", name="Dongtai County Hospital", tier="county")
            add_reader(
                session,
                username="li",
                consortium="Dongtai",
                tier="county",
                modalities=["CT", "DX"],
                display_name="李医生",
            )
            add_reader(session, username="wang", consortium="Dongtai", tier="county", modalities=["CT"])
            add_reader(session, username="zhao", consortium="Dongtai", tier="county", modalities=["DX"])
            add_reader(
                session,
                username="chen",
                consortium="Dongtai",
                tier="provincial",
                modalities=["CT", "DX"],
                display_name="陈教授",
            )
            for name in ("li", "wang", "zhao", "chen"):
                set_roster(session, name, ALWAYS if (county_on_duty or name == "chen") else [])
            ids = township.id, county.id
        return World(services, data_cache, *ids)

    yield build


def sign_study(world: World, study_uid: str, *, reader: str = "li", critical: bool = False) -> int:
    """Claim the study's task as ``reader`` and sign a CT head report; returns the report id."""
    from datetime import timedelta

    from reading.admin import find_reader
    from reading.reports.service import ReportInput, sign_report
    from reading.worklist.tasks import claim

    task = world.task_of(study_uid)
    body = ReportInput(
        "ct_head",
        {"haemorrhage": critical},
        findings="左侧基底节区见片状高密度影，约2.1×1.5cm。" if critical else "脑实质密度未见异常。",
        impression="左侧基底节区脑出血（急性期）。" if critical else "头颅CT平扫未见明显异常。",
        critical=critical,
    )
    with transaction(world.services.sessions) as session:
        who = find_reader(session, reader)
        claim(session, who, task.id, lease=timedelta(minutes=5), now=world.now())
        report = sign_report(session, who, task.id, body, now=world.now(), critical_ack=timedelta(minutes=15))
        return report.id
