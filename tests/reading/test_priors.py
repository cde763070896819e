"""Prior studies of the same patient from across the consortium (issue F), over HTTP: studies sent
by STOW-RS from each site with its own Patient IDs; a county reader who reads for one township
lists the priors of its task (the same ID card at the county hospital, a probable match by name,
birth date and sex at another township, nothing from another consortium), opens one as an
audited break-glass and then retrieves it by WADO-RS."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pacs import events
from pacs.identity.sites import add_site
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, BreakGlass, Change, Patient
from pacs.index.types import utcnow
from pacs.patients import (
    MatchBasis,
    demographics_key,
    normalised_name,
    resident_id,
)
from pacs.readiness import mark_ready_for_reading
from pacs.stability import mark_stable_studies
from reading.admin import add_reader, set_roster
from reading.settings import ReadingSettings
from reading.worklist.sweeper import route_pending
from tests.dicomweb.conftest import served
from tests.reading.priors import CARD, OTHER_CARD, patient, stow, stow_body
from tests.reading.world import ALWAYS, World
from viewer.app import create_app


@dataclass
class Consortium:
    world: World
    url: str
    tokens: dict[str, str]
    studies: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def stow(self, site_user: str, sent: tuple[bytes, str]) -> str:
        return stow(self.url, self.tokens[site_user], sent)


@pytest.fixture
def consortium(make_world: Callable[..., World], world_backend: str, tmp_path: Path) -> Iterator[Consortium]:
    world = make_world(world_backend)
    tokens: dict[str, str] = {}
    with transaction(world.services.sessions) as session:
        add_site(session, consortium="Dongtai", name="Anfeng", tier="township")
        add_site(session, consortium="Xinghua", name="Xinghua Township", tier="township")
        # Sun reads for Fudong only: not for the county hospital, Anfeng or anything of Xinghua.
        add_reader(
            session, username="sun", consortium="Dongtai", tier="county", modalities=["CT"], reads_for_sites=["Fudong"]
        )
        set_roster(session, "sun", ALWAYS)
        for login, site in (
            ("fudong", "Fudong"),
            ("county", "Dongtai County Hospital"),
            ("anfeng", "Anfeng"),
            ("xinghua", "Xinghua Township"),
        ):
            add_user(session, username=login, role="site", site=site)
        add_user(session, username="qa", role="qa", consortium="Dongtai")
        for login in ("sun", "li", "zhao", "fudong", "county", "anfeng", "xinghua", "qa"):
            tokens[login] = create_token(session, find_user(session, login))[1]
    with served(create_app(world.services, ReadingSettings(reading_lease_s=60, prior_access_hours=2))) as url:
        c = Consortium(world, url, tokens, {})
        sent = [
            ("current", "fudong", patient("FD0071"), "20261123", "Fudong"),
            ("same_id", "fudong", patient("FD0071"), "20251120", "Fudong"),
            ("county", "county", patient("DT-88231"), "20250610", "Dongtai County Hospital"),
            # No card recorded at Anfeng; the name typed with a space and in full-width digits-free form.
            ("probable", "anfeng", patient("AF-1203", name="王 桂英", card=None), "20240301", "Anfeng"),
            # The same card and name in another consortium: never the same patient here.
            ("xinghua", "xinghua", patient("XH-5"), "20250101", "Xinghua Township"),
            # Same name, birth date and sex but another card: another woman.
            ("namesake", "county", patient("DT-99999", card=OTHER_CARD), "20230101", "Dongtai County Hospital"),
        ]
        for seed, (label, user, who, date, site) in enumerate(sent, start=300):
            c.studies[label] = c.stow(user, stow_body(tmp_path, who, seed=seed, date=date, site=site))
        mark_stable_studies(world.services.sessions, timedelta(0))
        with transaction(world.services.sessions) as session:
            assert mark_ready_for_reading(session, c.studies["current"], reason="test", actor="test")
        route_pending(world.services.sessions, demo=False, now=utcnow())
        yield c


def test_identity_rules() -> None:
    assert resident_id(CARD.lower()) == CARD.upper()
    assert resident_id(CARD[:-1] + ("0" if CARD[-1] != "0" else "1")) is None  # a typo fails the check
    assert resident_id("FD0071") is None
    assert normalised_name("王^桂英") == normalised_name("王 桂英") == normalised_name("WANG^GUIYING=王^桂英")
    assert demographics_key("王^桂英", "19550304", "F") == demographics_key("王桂英", "19550304", "f")
    assert demographics_key("王^桂英", "1955", "F") is None and demographics_key("王^桂英", "19550304", None) is None


def test_a_reader_lists_priors_from_other_sites_with_their_basis(consortium: Consortium) -> None:
    c = consortium
    with transaction(c.world.services.sessions) as session:
        cards = {pid: card for pid, card in session.execute(select(Patient.patient_id, Patient.national_id))}
    assert cards["DT-88231"] == CARD and cards["AF-1203"] is None and cards["DT-99999"] == OTHER_CARD
    task = c.world.task_of(c.studies["current"]).id
    answer = c.call("sun", "GET", f"/api/tasks/{task}/priors")
    assert answer.status_code == 200, answer.text
    priors = answer.json()["priors"]
    assert [(p["study_uid"], p["basis"], p["site"], p["open"]) for p in priors] == [
        (c.studies["same_id"], MatchBasis.SAME_ID, "Fudong", True),
        (c.studies["county"], MatchBasis.NATIONAL_ID, "Dongtai County Hospital", False),
        (c.studies["probable"], MatchBasis.PROBABLE, "Anfeng", False),
    ]
    county = priors[1]
    assert (county["study_date"], county["modalities"], county["instances"]) == ("20250610", "CT", 2)
    assert county["description"] == "CT HEAD Dongtai County Hospital"


def test_only_a_reader_who_may_open_the_task_lists_or_opens_its_priors(consortium: Consortium) -> None:
    c = consortium
    task = c.world.task_of(c.studies["current"]).id
    # Zhao reads DX only; Fudong's site user and QA are no readers.
    for who in ("zhao", "fudong", "qa"):
        assert c.call(who, "GET", f"/api/tasks/{task}/priors").status_code == 403, who
        assert c.call(who, "POST", f"/api/tasks/{task}/priors/{c.studies['county']}/open").status_code == 403, who
    assert c.call("sun", "GET", "/api/tasks/999999/priors").status_code == 404
    assert c.call("sun", "POST", f"/api/tasks/{task}/priors/1.2.3/open").status_code == 404
    # Another consortium's study is no prior of this patient: nothing opens.
    assert c.call("sun", "POST", f"/api/tasks/{task}/priors/{c.studies['xinghua']}/open").status_code == 404
    assert c.call("sun", "POST", f"/api/tasks/{task}/priors/{c.studies['namesake']}/open").status_code == 404
    assert c.call("sun", "POST", f"/api/tasks/{task}/priors/not-a-uid/open").status_code == 422
    with transaction(c.world.services.sessions) as session:
        assert session.scalars(select(BreakGlass)).all() == []


def test_opening_a_prior_lets_the_reader_retrieve_it_and_is_audited(consortium: Consortium) -> None:
    c = consortium
    task = c.world.task_of(c.studies["current"]).id
    prior = c.studies["county"]
    # Not opened: outside his sites, the prior is not there for him (WADO answers 404 for that).
    assert c.call("sun", "GET", f"/dicomweb/studies/{prior}/metadata").status_code == 404
    assert c.call("sun", "GET", f"/dicomweb/studies?StudyInstanceUID={prior}").json() == []

    opened = c.call("sun", "POST", f"/api/tasks/{task}/priors/{prior}/open")
    assert opened.status_code == 200, opened.text
    assert opened.json()["granted"] is True and opened.json()["basis"] == "national_id"

    metadata = c.call("sun", "GET", f"/dicomweb/studies/{prior}/metadata")
    assert metadata.status_code == 200 and len(metadata.json()) == 2
    series = metadata.json()[0]["0020000E"]["Value"][0]
    sop = metadata.json()[0]["00080018"]["Value"][0]
    frame = c.call(
        "sun",
        "GET",
        f"/dicomweb/studies/{prior}/series/{series}/instances/{sop}/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
    )
    assert frame.status_code == 200 and len(frame.content) > 32 * 32
    found = c.call("sun", "GET", f"/dicomweb/studies?StudyInstanceUID={prior}").json()
    assert [row["0020000D"]["Value"][0] for row in found] == [prior]
    # The reader's sites stay as they were: the probable prior at Anfeng is still closed.
    assert c.call("sun", "GET", f"/dicomweb/studies/{c.studies['probable']}/metadata").status_code == 404
    listed = c.call("sun", "GET", f"/api/tasks/{task}/priors").json()["priors"]
    assert {p["study_uid"]: p["open"] for p in listed}[prior] is True
    # Opening again while it lasts needs no second break-glass.
    assert c.call("sun", "POST", f"/api/tasks/{task}/priors/{prior}/open").json()["granted"] is False

    c.world.services.audit.flush()
    with transaction(c.world.services.sessions) as session:
        grants = session.scalars(select(BreakGlass)).all()
        assert [(g.study_uid, g.reason) for g in grants] == [(prior, f"prior for task {task}")]
        assert timedelta(hours=1, minutes=59) < grants[0].expires_at - grants[0].opened_at <= timedelta(hours=2)
        actions = {
            (r.action, r.outcome)
            for r in session.scalars(
                select(AccessRecord).where(AccessRecord.username == "sun", AccessRecord.study_uid == prior)
            )
        }
        assert {("break-glass", "success"), ("metadata", "success"), ("frames", "success")} <= actions
        kinds = session.scalars(select(Change.kind).where(Change.study_uid == prior)).all()
        assert events.BREAK_GLASS_OPENED in kinds
    # QA sees the opening with its reason.
    reviewed = c.call("qa", "GET", "/api/break-glass").json()
    assert [(b["user"], b["study_uid"], b["reason"]) for b in reviewed] == [("sun", prior, f"prior for task {task}")]


def test_a_study_without_demographics_or_card_has_no_probable_priors(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    anonymous = patient(f"X{uuid.uuid4().hex[:6]}", card=None)
    sent = stow_body(
        tmp_path, anonymous, seed=399, date="20220101", site="Dongtai County Hospital", drop=("PatientBirthDate",)
    )
    uid = c.stow("county", sent)
    with transaction(c.world.services.sessions) as session:
        row = session.scalar(select(Patient).where(Patient.patient_id == anonymous.patient_id))
        assert row is not None and row.demographics_key is None and row.national_id is None
    task = c.world.task_of(c.studies["current"]).id
    assert uid not in {p["study_uid"] for p in c.call("sun", "GET", f"/api/tasks/{task}/priors").json()["priors"]}
