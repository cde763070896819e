"""The reading API over HTTP: every route authenticated, the reader's flow from worklist to
signature, escalation with the county preliminary, the site's view, and bad input answered
with a clear 4xx and nothing changed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ai_models.records import AiFeedback, AiFinding
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Change
from reading import events
from reading.models import Delivery, ReadingTask, Report
from reading.notify import PortalNotifier
from reading.settings import ReadingSettings
from tests.dicomweb.conftest import served
from tests.reading.world import World
from viewer.app import create_app

CT_HEAD = {
    "template_id": "ct_head",
    "fields": {"haemorrhage": True, "haemorrhage_location": "左侧基底节区", "midline_shift_mm": 3},
    "findings": "左侧基底节区见片状高密度影，约2.1×1.5cm，周围水肿带，中线结构右移约3mm。",
    "impression": "左侧基底节区脑出血（急性期），建议神经外科会诊。",
    "critical": True,
}


@dataclass
class Api:
    world: World
    url: str
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def changes(self) -> int:
        with transaction(self.world.services.sessions) as session:
            return int(session.scalar(select(func.count()).select_from(Change)) or 0)


@pytest.fixture
def api(make_world: Callable[..., World], world_backend: str) -> Iterator[Api]:
    world = make_world(world_backend)
    tokens = {}
    with transaction(world.services.sessions) as session:
        add_user(session, username="fudong", role="site", site="Fudong")
        add_user(session, username="county-site", role="site", site="Dongtai County Hospital")
        add_user(session, username="admin", role="admin", consortium="Dongtai")
        for name in ("li", "wang", "zhao", "chen", "fudong", "county-site", "admin"):
            tokens[name] = create_token(session, find_user(session, name))[1]
    with served(create_app(world.services, ReadingSettings(reading_lease_s=60))) as url:
        yield Api(world, url, tokens)


def test_every_api_route_requires_a_token(api: Api) -> None:
    schema = create_app(api.world.services).openapi()
    paths = {path: ops for path, ops in schema["paths"].items() if path.startswith("/api")}
    assert len(paths) >= 20
    for path, operations in paths.items():
        for method, operation in operations.items():
            if (method, path) == ("post", "/api/session"):
                continue  # the login itself (tests/viewer/test_sessions.py)
            assert {"HTTPBearer": []} in operation.get("security", []), f"{method.upper()} {path}"
            concrete = re.sub(r"\{[a-z_]+\}", "1", path)
            answer = httpx.request(method, f"{api.url}{concrete}", json={}, timeout=10)
            assert answer.status_code == 401, f"{method.upper()} {path}"


def test_a_reader_claims_writes_and_signs(api: Api) -> None:
    uid = api.world.ready_study()
    listed = api.call("li", "GET", "/api/worklist").json()
    assert [t["study_uid"] for t in listed["tasks"]] == [uid]
    assert listed["counts"] == {"claimed": 0, "preliminary": 0, "queued": 1}
    task = listed["tasks"][0]
    assert task["site"] == "Fudong" and "township site Fudong" in task["route_reason"]
    assert api.call("li", "POST", f"/api/tasks/{task['id']}/claim").status_code == 200
    assert api.call("wang", "POST", f"/api/tasks/{task['id']}/claim").status_code == 409
    saved = api.call("li", "PUT", f"/api/tasks/{task['id']}/report", json={**CT_HEAD, "preliminary": True})
    assert saved.status_code == 200, saved.text
    assert api.call("li", "GET", f"/api/tasks/{task['id']}").json()["state"] == "preliminary"
    assert api.call("fudong", "GET", f"/api/reports/{saved.json()['id']}").status_code == 404  # not signed yet
    signed = api.call("li", "POST", f"/api/tasks/{task['id']}/sign", json={})
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "final" and signed.json()["impression"] == CT_HEAD["impression"]
    with transaction(api.world.services.sessions) as session:
        delivery = session.scalars(select(Delivery)).one()
        assert (delivery.state, delivery.ae_title) == ("pending", "FUDONG_PACS")
        kinds = list(session.scalars(select(Change.kind).where(Change.study_uid == uid).order_by(Change.seq)))
    for kind in (
        events.TASK_QUEUED,
        events.TASK_CLAIMED,
        events.REPORT_PRELIMINARY,
        events.TASK_SIGNED,
        events.REPORT_SIGNED,
        events.CRITICAL_RAISED,
        events.DELIVERY_QUEUED,
    ):
        assert kind in kinds
    # The site sees its critical result and acknowledges it; its report is there to fetch.
    from reading.worklist.sweeper import notify_critical

    notify_critical(api.world.services.sessions, [PortalNotifier(api.world.services.sessions)], now=api.world.now())
    banner = api.call("fudong", "GET", "/api/site/alerts").json()
    assert [a["kind"] for a in banner] == ["critical.raised"] and api.call(
        "county-site", "GET", "/api/site/alerts"
    ).json() == []
    critical = api.call("fudong", "GET", "/api/site/critical").json()
    assert [c["impression"] for c in critical] == [CT_HEAD["impression"]]
    assert api.call("county-site", "GET", "/api/site/critical").json() == []
    assert api.call("county-site", "POST", f"/api/site/critical/{critical[0]['id']}/ack").status_code == 404
    assert api.call("fudong", "POST", f"/api/site/critical/{critical[0]['id']}/ack").json()["state"] == "acknowledged"
    reports = api.call("fudong", "GET", "/api/site/reports").json()
    assert [r["impression"] for r in reports] == [CT_HEAD["impression"]]
    assert api.call("county-site", "GET", f"/api/reports/{reports[0]['id']}").status_code == 404
    pdf = api.call("fudong", "GET", f"/api/reports/{reports[0]['id']}", params={"format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    fhir = api.call("fudong", "GET", f"/api/reports/{reports[0]['id']}", params={"format": "fhir"}).json()
    assert fhir["resourceType"] == "DiagnosticReport" and fhir["conclusion"] == CT_HEAD["impression"]
    hl7 = api.call("li", "GET", f"/api/reports/{reports[0]['id']}", params={"format": "hl7"}).text
    assert hl7.startswith("MSH|") and "ORU^R01" in hl7
    assert api.call("li", "GET", f"/api/reports/{reports[0]['id']}", params={"format": "docx"}).status_code == 422
    studies = api.call("fudong", "GET", "/api/site/studies").json()
    assert studies[0]["study_uid"] == uid and studies[0]["reading"] == "signed"
    # An addendum is a new signed version, delivered again.
    added = api.call(
        "wang", "POST", f"/api/tasks/{task['id']}/addendum", json={"text": "补充：复查CT建议24小时内进行。"}
    )
    assert added.status_code == 200 and added.json()["version"] == 2 and added.json()["status"] == "amended"
    with transaction(api.world.services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2


def test_escalation_carries_the_county_preliminary_to_the_provincial_expert(api: Api) -> None:
    uid = api.world.ready_study()
    county = api.call("li", "GET", "/api/worklist").json()["tasks"][0]
    api.call("li", "POST", f"/api/tasks/{county['id']}/claim")
    api.call("li", "PUT", f"/api/tasks/{county['id']}/report", json=CT_HEAD)
    escalated = api.call(
        "li", "POST", f"/api/tasks/{county['id']}/escalate", json={"reason": "疑难病例，请省级专家会诊"}
    )
    assert escalated.status_code == 200 and escalated.json()["tier"] == "provincial"
    provincial = api.call("chen", "GET", "/api/worklist").json()["tasks"]
    assert [t["escalation_reason"] for t in provincial] == ["疑难病例，请省级专家会诊"]
    assert api.call("li", "GET", "/api/worklist").json()["tasks"] == []
    detail = api.call("chen", "GET", f"/api/tasks/{provincial[0]['id']}").json()
    assert detail["carried_report"]["status"] == "preliminary"
    assert detail["carried_report"]["impression"] == CT_HEAD["impression"]
    api.call("chen", "POST", f"/api/tasks/{provincial[0]['id']}/claim")
    signed = api.call("chen", "POST", f"/api/tasks/{provincial[0]['id']}/sign", json={"cosign": True})
    assert signed.status_code == 200, signed.text
    with transaction(api.world.services.sessions) as session:
        report = session.get_one(Report, signed.json()["id"])
        task = session.get_one(ReadingTask, provincial[0]["id"])
        assert task.state == "signed" and report.impression == CT_HEAD["impression"]
        assert report.author_id != report.signer_id  # the county reader wrote it, the expert signed it
    assert uid


def test_bad_requests_get_a_clear_4xx_and_change_nothing(api: Api) -> None:
    api.world.ready_study()
    task_id = api.call("li", "GET", "/api/worklist").json()["tasks"][0]["id"]
    assert api.call("zhao", "POST", f"/api/tasks/{task_id}/claim").status_code == 403  # DX only
    assert api.call("fudong", "GET", "/api/worklist").status_code == 403  # not a reader
    assert api.call("li", "POST", "/api/tasks/999999/claim").status_code == 404
    assert api.call("li", "PUT", "/api/tasks/999999/report", json=CT_HEAD).status_code == 404  # no such study/task
    api.call("li", "POST", f"/api/tasks/{task_id}/claim")
    before = api.changes()
    unknown_field = api.call(
        "li", "PUT", f"/api/tasks/{task_id}/report", json={**CT_HEAD, "fields": {"colour": "blue"}}
    )
    assert unknown_field.status_code == 422 and "colour" in unknown_field.text
    unknown_template = api.call("li", "PUT", f"/api/tasks/{task_id}/report", json={**CT_HEAD, "template_id": "ct_toe"})
    assert unknown_template.status_code == 422 and "ct_toe" in unknown_template.text
    someone_elses = api.call("wang", "POST", f"/api/tasks/{task_id}/sign", json={"report": CT_HEAD})
    assert someone_elses.status_code == 409 and "not claimed by you" in someone_elses.text
    no_report = api.call("li", "POST", f"/api/tasks/{task_id}/sign", json={})
    assert no_report.status_code == 422 and "save one first" in no_report.text
    empty = api.call("li", "POST", f"/api/tasks/{task_id}/sign", json={"report": {**CT_HEAD, "impression": " "}})
    assert empty.status_code == 422 and "impression" in empty.text
    bad_escalation = api.call("li", "POST", f"/api/tasks/{task_id}/escalate", json={"reason": ""})
    assert bad_escalation.status_code == 422
    assert api.call("li", "GET", "/api/worklist", params={"priority": "someday"}).status_code == 422
    assert api.changes() == before
    with transaction(api.world.services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 0
        assert session.get_one(ReadingTask, task_id).state == "claimed"


def test_a_site_asks_for_a_second_opinion_and_admins_configure_readers(api: Api) -> None:
    created = api.call(
        "admin",
        "POST",
        "/api/admin/readers",
        json={
            "username": "sun",
            "consortium": "Dongtai",
            "tier": "county",
            "modalities": ["CT"],
            "roster": ["daily 00:00-12:00", "daily 12:00-00:00"],
        },
    )
    assert created.status_code == 201, created.text
    assert "sun" in [r["username"] for r in api.call("admin", "GET", "/api/admin/readers").json()]
    assert api.call("li", "GET", "/api/admin/readers").status_code == 403
    bad = api.call(
        "admin",
        "POST",
        "/api/admin/readers",
        json={"username": "x", "consortium": "Dongtai", "tier": "chief", "modalities": ["CT"]},
    )
    assert bad.status_code == 422 and "county or provincial" in bad.text
    assert (
        api.call(
            "admin",
            "PUT",
            "/api/admin/sla",
            json={"consortium": "Dongtai", "priority": "routine", "minutes": 120, "modality": "DX"},
        ).status_code
        == 200
    )
    uid = api.world.ingest_study()
    asked = api.call(
        "fudong", "POST", "/api/site/requests", json={"study_uid": uid, "second_opinion": True, "priority": "urgent"}
    )
    assert asked.status_code == 201, asked.text
    assert api.call("county-site", "POST", "/api/site/requests", json={"study_uid": uid}).status_code == 404
    from datetime import timedelta

    from pacs.readiness import mark_ready_for_reading
    from pacs.stability import mark_stable_studies
    from reading.worklist.sweeper import route_pending

    mark_stable_studies(api.world.services.sessions, timedelta(0))
    with transaction(api.world.services.sessions) as session:
        mark_ready_for_reading(session, uid, reason="test", actor="test")
    route_pending(api.world.services.sessions, demo=False, now=api.world.now())
    task = api.world.task_of(uid)
    assert (task.tier, task.priority) == ("provincial", "urgent")
    assert "second opinion" in task.route_reason
    # Once routed, a higher priority still applies; anything else is refused, not filed away.
    raised = api.call("fudong", "POST", "/api/site/requests", json={"study_uid": uid, "priority": "stat"})
    assert raised.status_code == 201 and api.world.task_of(uid).priority == "stat"
    own = api.world.ready_study()
    late = api.call("fudong", "POST", "/api/site/requests", json={"study_uid": own, "second_opinion": True})
    assert late.status_code == 409 and "can escalate" in late.text


def test_break_glass_opens_one_study_beyond_the_readers_sites_and_is_audited(api: Api) -> None:
    from pacs.identity.sites import add_site
    from pacs.index.models import AccessRecord

    with transaction(api.world.services.sessions) as session:
        other = add_site(session, consortium="Xiyang", name="Xiyang Clinic", tier="township").id
        add_user(session, username="qa", role="qa", consortium="Xiyang")
        api.tokens["qa"] = create_token(session, find_user(session, "qa"))[1]
    uid = api.world.ingest_study(site_id=other)
    own = api.world.ingest_study()
    search = {"StudyInstanceUID": uid}
    assert api.call("li", "GET", "/dicomweb/studies", params=search).json() == []
    assert len(api.call("li", "GET", "/dicomweb/studies", params={"StudyInstanceUID": own}).json()) == 1
    assert api.call("li", "GET", f"/dicomweb/studies/{uid}/metadata").status_code == 404
    short = api.call("li", "POST", "/api/break-glass", json={"study_uid": uid, "reason": "urgent"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert (
        api.call("li", "POST", "/api/break-glass", json={"study_uid": "1.2.3.4", "reason": "x" * 20}).status_code == 404
    )
    assert (
        api.call("fudong", "POST", "/api/break-glass", json={"study_uid": uid, "reason": "x" * 20}).status_code == 403
    )
    reason = "患者转入我院急诊，需查看外院头颅CT"
    opened = api.call("li", "POST", "/api/break-glass", json={"study_uid": uid, "reason": reason})
    assert opened.status_code == 201, opened.text
    found = api.call("li", "GET", "/dicomweb/studies", params=search)
    assert found.status_code == 200 and len(found.json()) == 1
    assert api.call("li", "GET", f"/dicomweb/studies/{uid}/metadata").status_code == 200
    assert api.call("wang", "GET", "/dicomweb/studies", params=search).json() == []  # li's opening, not his
    listed = api.call("qa", "GET", "/api/break-glass").json()
    assert [(b["user"], b["reason"]) for b in listed] == [("li", reason)]
    api.world.services.audit.flush()
    with transaction(api.world.services.sessions) as session:
        actions = session.scalars(select(AccessRecord.action).where(AccessRecord.study_uid == uid)).all()
        kinds = session.scalars(select(Change.kind).where(Change.study_uid == uid)).all()
    assert "break-glass" in actions and "access.break_glass" in kinds


def test_admins_add_sites_and_their_modalities(api: Api) -> None:
    site = api.call(
        "admin",
        "POST",
        "/api/admin/sites",
        json={
            "consortium": "Dongtai",
            "name": "Touzao",
            "tier": "township",
            "return_ae_title": "TOUZAO_WS",
            "return_host": "10.20.0.5",
            "return_port": 104,
            "report_image": True,
        },
    )
    assert site.status_code == 201, site.text
    assert site.json()["report_image"] is True
    bad_tier = api.call(
        "admin", "POST", "/api/admin/sites", json={"consortium": "Dongtai", "name": "X", "tier": "city"}
    )
    assert bad_tier.status_code == 422 and "tier must be one of" in bad_tier.text
    other = api.call("admin", "POST", "/api/admin/sites", json={"consortium": "Xiyang", "name": "Y", "tier": "village"})
    assert other.status_code == 403
    site_id = site.json()["id"]
    bad_address = api.call(
        "admin",
        "POST",
        f"/api/admin/sites/{site_id}/aes",
        json={"ae_title": "TOUZAO_DR", "allowed_address": "10.20.0.300"},
    )
    assert bad_address.status_code == 422
    added = api.call(
        "admin",
        "POST",
        f"/api/admin/sites/{site_id}/aes",
        json={"ae_title": "TOUZAO_DR", "allowed_address": "10.20.0.0/24", "assumed_charset": "GB18030"},
    )
    assert added.status_code == 201 and added.json()["aes"][0]["ae_title"] == "TOUZAO_DR"
    assert "Touzao" in [s["name"] for s in api.call("admin", "GET", "/api/admin/sites").json()]
    assert api.call("li", "GET", "/api/admin/sites").status_code == 403


# ---------------------------------------------------------------- AI findings and readers' opinions


def add_finding(api: Api, study_uid: str, *, label: str, probability: float, positive: bool) -> int:
    with transaction(api.world.services.sessions) as session:
        row = AiFinding(
            study_uid=study_uid,
            model="ich-screen",
            version="1.0",
            label=label,
            probability=probability,
            positive=positive,
            location=[{"sop_instance_uid": "1.2.3", "frame": 1, "box": [10, 10, 20, 20]}],
            explanation="hyperdense area",
        )
        session.add(row)
        session.flush()
        return row.id


def test_a_reader_sees_the_findings_and_agrees_or_disagrees_once(api: Api) -> None:
    uid = api.world.ready_study()
    task = api.call("li", "GET", "/api/worklist").json()["tasks"][0]
    negative = add_finding(api, uid, label="fracture", probability=0.1, positive=False)
    positive = add_finding(api, uid, label="intracranial_haemorrhage", probability=0.93, positive=True)

    listed = api.call("li", "GET", f"/api/tasks/{task['id']}/ai-findings").json()
    assert [f["id"] for f in listed] == [positive, negative]
    assert listed[0]["location"][0]["sop_instance_uid"] == "1.2.3" and listed[0]["agree"] is None

    assert api.call("li", "POST", f"/api/ai-findings/{positive}/feedback", json={"agree": True}).json()["agree"]
    again = api.call(
        "li", "POST", f"/api/ai-findings/{positive}/feedback", json={"agree": False, "comment": "calcification"}
    )
    assert again.status_code == 200 and again.json()["agree"] is False
    assert api.call("li", "GET", f"/api/tasks/{task['id']}/ai-findings").json()[0]["agree"] is False
    with transaction(api.world.services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(AiFeedback)) == 1


def test_others_may_not_give_an_opinion(api: Api) -> None:
    uid = api.world.ready_study()
    finding = add_finding(api, uid, label="intracranial_haemorrhage", probability=0.9, positive=True)
    assert api.call("fudong", "POST", f"/api/ai-findings/{finding}/feedback", json={"agree": True}).status_code == 403
    assert api.call("li", "POST", "/api/ai-findings/999999/feedback", json={"agree": True}).status_code == 404
    assert api.call("li", "POST", f"/api/ai-findings/{finding}/feedback", json={}).status_code == 422
