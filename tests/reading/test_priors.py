"""Prior studies of the same patient from across the consortium (issue F), over HTTP: studies sent
by STOW-RS from each site with its own Patient IDs; a county reader who reads for one township
lists the priors of its task (the same ID card at the county hospital, a probable match by name,
birth date and sex at another township, nothing from another consortium), opens one as an
audited break-glass and then retrieves it by WADO-RS. Readers confirm or reject a probable match;
a site's later study with another ID card number keeps the first and raises an alert; the card's
issuer is a setting."""

from __future__ import annotations

import threading
import time
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
from pacs.index.models import AccessRecord, Alert, BreakGlass, Change, Patient, PatientLink
from pacs.index.types import utcnow
from pacs.ingest import Origin
from pacs.patient_links import LinkDecision, decide_link
from pacs.patients import (
    MatchBasis,
    demographics_key,
    normalised_name,
    prior_studies,
    resident_id,
)
from pacs.readiness import mark_ready_for_reading
from pacs.service import Services
from pacs.settings import Settings
from pacs.stability import mark_stable_studies
from reading.admin import add_reader, set_roster
from reading.settings import ReadingSettings
from reading.worklist.sweeper import route_pending
from tests.dicomweb.conftest import served
from tests.reading.priors import CARD, OTHER_CARD, patient, stow, stow_body, study_files
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


def _decide(c: Consortium, who: str, task: int, label: str, decision: str, reason: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"decision": decision} | ({"reason": reason} if reason is not None else {})
    return c.call(who, "POST", f"/api/tasks/{task}/priors/{c.studies[label]}/identity", json=body)


def _listed(c: Consortium, who: str, task: int) -> dict[str, tuple[str, str | None]]:
    answer = c.call(who, "GET", f"/api/tasks/{task}/priors")
    assert answer.status_code == 200, answer.text
    return {p["study_uid"]: (p["basis"], p["decided_by"]) for p in answer.json()["priors"]}


def test_a_reader_confirms_a_probable_prior_and_another_rejects_it(consortium: Consortium) -> None:
    c = consortium
    task = c.world.task_of(c.studies["current"]).id
    probable = c.studies["probable"]
    confirmed = _decide(c, "sun", task, "probable", "confirmed")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"study_uid": probable, "decision": "confirmed", "previous": None, "previous_by": None}
    # Listed as confirmed, with who confirmed it, for every reader of the task.
    for reader in ("sun", "li"):
        assert _listed(c, reader, task)[probable] == (MatchBasis.CONFIRMED, "sun")
        assert _listed(c, reader, task)[c.studies["county"]] == (MatchBasis.NATIONAL_ID, None)

    # Li, who also reads the task, thinks otherwise: his decision replaces Sun's.
    rejected = _decide(c, "li", task, "probable", "rejected", "  出生地不同，另一人  ")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["previous"], rejected.json()["previous_by"]) == ("confirmed", "sun")
    for reader in ("sun", "li"):
        assert probable not in _listed(c, reader, task)
    # Deciding again on a prior no longer listed: nothing to decide.
    assert _decide(c, "sun", task, "probable", "confirmed").status_code == 404

    c.world.services.audit.flush()
    with transaction(c.world.services.sessions) as session:
        # The pair is one row, whichever side: from the Anfeng study the Fudong ones are gone too.
        assert c.studies["current"] not in {p.study_uid for p in prior_studies(session, probable)}
        link = session.scalars(select(PatientLink)).one()
        pair = sorted(session.scalars(select(Patient.id).where(Patient.patient_id.in_(["FD0071", "AF-1203"]))))
        assert [link.patient_low, link.patient_high] == pair
        assert (link.decision, link.decided_by, link.reason) == ("rejected", "li", "出生地不同，另一人")
        changes = session.scalars(select(Change).where(Change.kind.like("patient_link.%")).order_by(Change.seq)).all()
        assert [(ch.kind, ch.actor, ch.payload["previous"]) for ch in changes] == [
            (events.PATIENT_LINK_CONFIRMED, "sun", None),
            (events.PATIENT_LINK_REJECTED, "li", "confirmed"),
        ]
        assert changes[1].payload["patients"] == pair and changes[1].study_uid == probable
        audited = session.scalars(
            select(AccessRecord).where(AccessRecord.action == "patient-identity").order_by(AccessRecord.id)
        ).all()
        assert [(r.username, r.study_uid, r.patient_id, r.detail["decision"]) for r in audited] == [
            ("sun", probable, "AF-1203", "confirmed"),
            ("li", probable, "AF-1203", "rejected"),
        ]


def test_only_a_reader_of_the_task_decides_and_only_on_a_probable_prior(consortium: Consortium) -> None:
    c = consortium
    task = c.world.task_of(c.studies["current"]).id
    for who in ("zhao", "fudong", "qa"):
        assert _decide(c, who, task, "probable", "rejected").status_code == 403, who
    bad = _decide(c, "sun", task, "probable", "maybe")
    assert bad.status_code == 422
    assert (bad.json()["code"], bad.json()["field"]) == ("identity_decision_invalid", "decision")
    long = _decide(c, "sun", task, "probable", "rejected", "太长" * 300)
    assert (long.status_code, long.json()["code"]) == (422, "identity_reason_long")
    assert (
        c.call("sun", "POST", f"/api/tasks/{task}/priors/{c.studies['probable']}/identity", json={}).status_code == 422
    )
    # Matched by the ID card or the same Patient ID: no reader's word is needed or taken.
    for label, basis in (("county", "national_id"), ("same_id", "same_id")):
        answer = _decide(c, "sun", task, label, "rejected")
        assert answer.status_code == 409, label
        assert (answer.json()["code"], answer.json()["params"]) == ("prior_not_probable", {"basis": basis})
    # Another consortium's namesake, another card's namesake, an unknown study: no prior of this task.
    for label in ("xinghua", "namesake"):
        assert _decide(c, "sun", task, label, "confirmed").status_code == 404, label
    assert (
        c.call("sun", "POST", "/api/tasks/999999/priors/1.2.3/identity", json={"decision": "confirmed"}).status_code
        == 404
    )
    with transaction(c.world.services.sessions) as session:
        assert session.scalars(select(PatientLink)).all() == []
        # Nor does the core link two consortiums' patients, whoever asks.
        fudong, xinghua = (
            session.scalars(select(Patient).where(Patient.patient_id == pid)).one() for pid in ("FD0071", "XH-5")
        )
        with pytest.raises(ValueError, match="different consortiums"):
            decide_link(
                session, fudong, xinghua, LinkDecision.CONFIRMED, user_id=None, username="x", reason=None, now=utcnow()
            )
    assert _listed(c, "sun", task)[c.studies["probable"]] == (MatchBasis.PROBABLE, None)


def test_a_patient_row_keeps_its_first_card_and_a_second_one_raises_an_alert(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    # The county hospital sends a new study under the same Patient ID with another woman's card.
    uid = c.stow(
        "county", stow_body(tmp_path, patient("DT-88231", card=OTHER_CARD), seed=398, date="20261001", site="x")
    )
    with transaction(c.world.services.sessions) as session:
        row = session.scalars(select(Patient).where(Patient.patient_id == "DT-88231")).one()
        assert row.national_id == CARD  # the first card stands
        alerts = session.scalars(select(Alert).where(Alert.kind == events.PATIENT_NATIONAL_ID_CONFLICT)).all()
        assert [(a.site_id, a.study_uid) for a in alerts] == [(row.site_id, uid)]
        assert OTHER_CARD not in alerts[0].message and CARD not in alerts[0].message  # masked
        assert OTHER_CARD[:6] in alerts[0].message and OTHER_CARD[-4:] in alerts[0].message
        assert "DT-88231" in alerts[0].message
        kinds = session.scalars(select(Change.kind).where(Change.study_uid == uid)).all()
        assert events.PATIENT_NATIONAL_ID_CONFLICT in kinds
    # The same card again, or none: no alert.
    c.stow("county", stow_body(tmp_path, patient("DT-88231"), seed=397, date="20261002", site="x"))
    c.stow("county", stow_body(tmp_path, patient("DT-88231", card=None), seed=396, date="20261003", site="x"))
    with transaction(c.world.services.sessions) as session:
        assert len(session.scalars(select(Alert).where(Alert.kind == events.PATIENT_NATIONAL_ID_CONFLICT)).all()) == 1


def test_the_id_card_issuer_is_a_setting(
    make_services: Callable[..., Services], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUNYING_NATIONAL_ID_ISSUER", "GB11643")
    assert Settings().national_id_issuer == "GB11643"
    monkeypatch.delenv("YUNYING_NATIONAL_ID_ISSUER")
    assert Settings().national_id_issuer == "CN-RIC"
    services = make_services("sqlite-folder", national_id_issuer="GB11643")
    with transaction(services.sessions) as session:
        site = add_site(session, consortium="Dongtai", name="Fudong", tier="township").id
    for seed, (pid, issuer) in enumerate((("P-GB", "GB11643"), ("P-RIC", "CN-RIC")), start=600):
        for path in study_files(tmp_path, patient(pid, issuer=issuer), seed=seed):
            assert services.ingest.receive(path, Origin(site, "CT", "127.0.0.1")).accepted
    with transaction(services.sessions) as session:
        cards = {pid: card for pid, card in session.execute(select(Patient.patient_id, Patient.national_id))}
    assert cards == {"P-GB": CARD, "P-RIC": None}


def test_two_readers_deciding_a_pair_for_the_first_time_at_once_leave_one_decision(consortium: Consortium) -> None:
    """Sun's first decision is not committed yet when Li's arrives: Li's waits (PostgreSQL: on the
    pair's unique index; SQLite: for the write lock), then replaces it instead of failing."""
    sessions = consortium.world.services.sessions

    def pair(session: Any) -> list[Patient]:
        return [session.scalars(select(Patient).where(Patient.patient_id == p)).one() for p in ("FD0071", "AF-1203")]

    decided: dict[str, Any] = {}

    def li() -> None:
        with transaction(sessions) as session:
            own, other = pair(session)
            decided["li"] = decide_link(
                session, own, other, LinkDecision.REJECTED, user_id=None, username="li", reason=None, now=utcnow()
            )

    with transaction(sessions) as session:
        own, other = pair(session)
        now = utcnow()
        decide_link(session, own, other, LinkDecision.CONFIRMED, user_id=None, username="sun", reason=None, now=now)
        second = threading.Thread(target=li)
        second.start()
        time.sleep(0.5)
    second.join(30)
    assert (decided["li"].previous, decided["li"].previous_by) == (LinkDecision.CONFIRMED, "sun")
    with transaction(sessions) as session:
        assert [(x.decision, x.decided_by) for x in session.scalars(select(PatientLink))] == [("rejected", "li")]
