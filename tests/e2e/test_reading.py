"""End to end through the real protocols: a township modality pushes a CT with dcmtk's
``storescu``; the study turns stable; with no AI worker running, the reading sweeper hands it to
reading after the AI timeout; a county reader claims and signs over HTTP; the SR and the PDF
arrive by C-STORE at a dcmtk ``storescp`` playing the township's PACS; the change log holds
every step with its time. Then the same with an escalation to a provincial expert."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from sqlalchemy import select

from pacs.audit_chain import AuditKey, verify
from pacs.identity.sites import add_site_ae
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Change, Site
from pacs.service import Services
from reading.admin import add_reader, set_roster
from reading.settings import ReadingSettings
from tests.conftest import free_port, require, storescu, wait_for
from tests.pacs.helpers import write_ct
from tests.reading.test_delivery import PDF_CLASS, SR_CLASS, sr_texts, storescp
from tests.reading.world import ALWAYS
from viewer.serve import EmbeddedService

CT_HEAD = {
    "template_id": "ct_head",
    "fields": {"haemorrhage": False, "ventricles": "normal"},
    "findings": "脑实质内未见异常密度影，脑室系统未见扩大，中线结构居中。",
    "impression": "头颅CT平扫未见明显异常。",
}


@dataclass
class Centre:
    services: Services
    service: EmbeddedService
    url: str
    tokens: dict[str, str]
    received: Path

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30, **kwargs
        )

    def timeline(self, study_uid: str) -> list[tuple[str, datetime]]:
        with transaction(self.services.sessions) as session:
            rows = session.execute(
                select(Change.kind, Change.at).where(Change.study_uid == study_uid).order_by(Change.seq)
            ).all()
        return [(kind, at) for kind, at in rows]


@pytest.fixture
def centre(make_services: Callable[..., Services], tmp_path: Path) -> Iterator[Centre]:
    require("storescu")
    services = make_services(
        dicom_port=free_port(), http_port=free_port(), stability_seconds=1.0, audit_seal_interval_s=0.2
    )
    township_pacs = free_port()
    with transaction(services.sessions) as session:
        from pacs.identity.sites import add_site

        site = add_site(
            session,
            consortium="Dongtai",
            name="Fudong",
            tier="township",
            return_ae_title="FUDONG_PACS",
            return_host="127.0.0.1",
            return_port=township_pacs,
        )
        add_site_ae(session, site=site, ae_title="FUDONG_CT", allowed_address="127.0.0.1")
        add_reader(session, username="li", consortium="Dongtai", tier="county", modalities=["CT"])
        add_reader(session, username="chen", consortium="Dongtai", tier="provincial", modalities=["CT"])
        set_roster(session, "li", ALWAYS)
        set_roster(session, "chen", ALWAYS)
        add_user(session, username="fudong", role="site", site="Fudong")
        add_user(session, username="wang", role="qa", consortium="Dongtai")
        tokens = {name: create_token(session, find_user(session, name))[1] for name in ("li", "chen", "fudong", "wang")}
        assert session.get(Site, site.id) is not None
    reading = ReadingSettings(reading_ai_timeout_s=1, reading_sweep_poll_s=0.2, delivery_poll_s=0.2)
    service = EmbeddedService(services, reading)
    received = tmp_path / "township-pacs"
    process = storescp(township_pacs, received)
    service.start()
    try:
        yield Centre(services, service, f"http://127.0.0.1:{services.settings.http_port}", tokens, received)
    finally:
        service.stop()
        process.terminate()
        process.wait(timeout=10)


def push_ct(centre: Centre, folder: Path, seed: int) -> str:
    files = write_ct(folder, slices=4, seed=seed, size=64, kind="head")
    ok, failed, output = storescu(centre.services.settings.dicom_port, files)
    assert (ok, failed) == (4, 0), output
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def queued_task(centre: Centre, who: str, study_uid: str) -> dict[str, Any]:
    def listed() -> dict[str, Any] | None:
        tasks = centre.call(who, "GET", "/api/worklist").json()["tasks"]
        return next((t for t in tasks if t["study_uid"] == study_uid), None)

    found: dict[str, Any] = wait_for(listed, timeout=20, interval=0.2)
    return found


def delivered_objects(centre: Centre, count: int) -> list[pydicom.Dataset]:
    wait_for(
        lambda: centre.received.exists() and len(list(centre.received.iterdir())) >= count, timeout=30, interval=0.2
    )
    return [pydicom.dcmread(path) for path in sorted(centre.received.iterdir())]


@pytest.mark.slow
def test_a_township_ct_is_read_by_the_county_and_the_report_returns_to_the_township(
    centre: Centre, data_cache: Path
) -> None:
    study_uid = push_ct(centre, data_cache / "e2e-reading-1", seed=71)
    task = queued_task(centre, "li", study_uid)
    assert task["tier"] == "county" and "township site Fudong" in task["route_reason"]
    assert centre.call("li", "POST", f"/api/tasks/{task['id']}/claim").status_code == 200
    assert centre.call("li", "GET", f"/api/tasks/{task['id']}").status_code == 200  # he opens it to read
    signed = centre.call("li", "POST", f"/api/tasks/{task['id']}/sign", json={"report": CT_HEAD})
    assert signed.status_code == 200, signed.text
    objects = delivered_objects(centre, 2)
    assert sorted(str(ds.SOPClassUID) for ds in objects) == sorted([SR_CLASS, PDF_CLASS])
    assert all(ds.StudyInstanceUID == study_uid for ds in objects)
    pdf = next(ds for ds in objects if ds.SOPClassUID == PDF_CLASS)
    assert pdf.EncapsulatedDocument.startswith(b"%PDF")
    wait_for(lambda: "delivery.delivered" in [k for k, _ in centre.timeline(study_uid)], timeout=10)
    timeline = centre.timeline(study_uid)
    kinds = [kind for kind, _ in timeline]
    steps = [
        "study.received",
        "study.stable",
        "study.ready_for_reading",
        "task.queued",
        "task.claimed",
        "task.signed",
        "report.signed",
        "delivery.queued",
        "delivery.delivered",
    ]
    assert [k for k in kinds if k in steps] == steps
    times = [at for _, at in timeline]
    assert times == sorted(times) and all(at.tzinfo is not None for at in times)
    assert centre.call("fudong", "GET", "/api/site/studies").json()[0]["reading"] == "signed"

    # QA sees the run in its turnaround figures, each interval from these very events.
    first = dict(reversed(timeline))  # the earliest time of each kind
    groups = centre.call("wang", "GET", "/api/qa/turnaround", params={"group_by": "site"}).json()["groups"]
    [fudong] = [g for g in groups if g["site"] == "Fudong"]
    assert fudong["count"] == 1 and fudong["sla"] == {"met": 1, "breached": 0, "compliance": 1.0}

    def minutes(start: str, end: str) -> float:
        return (first[end] - first[start]).total_seconds() / 60

    figures = fudong["minutes"]
    assert figures["claimed"]["p50"] == pytest.approx(minutes("task.queued", "task.claimed"), abs=0.01)
    assert figures["report"]["p50"] == pytest.approx(minutes("study.received", "task.signed"), abs=0.01)
    assert figures["site"]["p50"] == pytest.approx(minutes("study.received", "delivery.delivered"), abs=0.01)

    # QA finds who opened the study in the access audit, and the running sealer has chained it.
    def opened() -> list[dict[str, Any]]:
        records = centre.call("wang", "GET", "/api/audit", params={"study_uid": study_uid}).json()["records"]
        return [r for r in records if r["action"] == "open-task" and r["chain_seq"] is not None]

    [record] = wait_for(opened, timeout=10, interval=0.3)
    assert (record["username"], record["role"], record["source"]) == ("li", "reader", "127.0.0.1")
    with transaction(centre.services.sessions, read_only=True) as session:
        assert verify(session, AuditKey.from_settings(centre.services.settings)).intact


@pytest.mark.slow
def test_an_escalated_ct_is_signed_by_the_provincial_expert_and_delivered(centre: Centre, data_cache: Path) -> None:
    study_uid = push_ct(centre, data_cache / "e2e-reading-2", seed=72)
    county = queued_task(centre, "li", study_uid)
    centre.call("li", "POST", f"/api/tasks/{county['id']}/claim")
    preliminary = centre.call(
        "li",
        "PUT",
        f"/api/tasks/{county['id']}/report",
        json={**CT_HEAD, "preliminary": True, "impression": "左颞叶可疑低密度影，性质待定。"},
    )
    assert preliminary.status_code == 200
    escalated = centre.call(
        "li", "POST", f"/api/tasks/{county['id']}/escalate", json={"reason": "可疑早期脑梗死，请省级会诊"}
    )
    assert escalated.status_code == 200
    provincial = queued_task(centre, "chen", study_uid)
    assert provincial["escalation_reason"] == "可疑早期脑梗死，请省级会诊"
    detail = centre.call("chen", "GET", f"/api/tasks/{provincial['id']}").json()
    assert detail["carried_report"]["impression"] == "左颞叶可疑低密度影，性质待定。"
    centre.call("chen", "POST", f"/api/tasks/{provincial['id']}/claim")
    expert = {
        **CT_HEAD,
        "impression": "左侧颞叶早期脑梗死可能，建议MRI DWI检查。",
        "referral": "建议转诊至县医院神经内科",
    }
    assert (
        centre.call("chen", "POST", f"/api/tasks/{provincial['id']}/sign", json={"report": expert}).status_code == 200
    )
    objects = delivered_objects(centre, 2)
    sr = next(ds for ds in objects if ds.SOPClassUID == SR_CLASS)
    assert "左侧颞叶早期脑梗死可能，建议MRI DWI检查。" in sr_texts(sr)
    kinds = [kind for kind, _ in centre.timeline(study_uid)]
    assert kinds.count("task.queued") == 2 and "task.escalated" in kinds
    pdf = bytes(next(ds for ds in objects if ds.SOPClassUID == PDF_CLASS).EncapsulatedDocument)
    printed = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "左侧颞叶早期脑梗死可能" in printed.replace("\n", "")
