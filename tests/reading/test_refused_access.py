"""A refused access is audited (denied records): a reader refused a task, its priors or its AI
findings, and a study outside his sites asked for by QIDO or WADO — each exactly one record
with who, what, when and from where, found by the QA's (or the installation admin's) audit
search, sealed into the chain that still verifies. An absent study and a caller without
credentials write no refusal; the answers themselves are unchanged (403 for a task, 404 for a
study of another site, like an absent one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from pacs.audit_chain import AuditKey, seal_all
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, Instance, Series, Site, Study
from tests.reading.audit_api import Api, audit_api
from tests.reading.world import World


class DeniedApi(Api):
    def denied(self) -> list[AccessRecord]:
        self.world.services.audit.flush()
        with transaction(self.world.services.sessions) as session:
            return list(
                session.scalars(
                    select(AccessRecord)
                    .where(AccessRecord.outcome == "denied", AccessRecord.action != "audit.search")
                    .order_by(AccessRecord.id)
                )
            )


@pytest.fixture
def api(make_world: Callable[..., World], world_backend: str) -> Iterator[DeniedApi]:
    with audit_api(make_world(world_backend), readers=("li", "zhao")) as served_api:
        yield DeniedApi(served_api.world, served_api.url, served_api.tokens)


def _verify_intact(api: DeniedApi) -> None:
    seal_all(api.world.services.sessions, AuditKey.from_settings(api.world.services.settings))
    verdict = api.get("root", "/api/audit/verify").json()
    assert verdict["intact"] is True, verdict


def test_a_reader_refused_a_task_its_priors_and_findings_is_audited_once_each(api: DeniedApi) -> None:
    uid = api.world.ready_study()
    task = api.world.task_of(uid)
    patient_id = api.world.study(uid).patient_id
    paths = [f"/api/tasks/{task.id}", f"/api/tasks/{task.id}/priors", f"/api/tasks/{task.id}/ai-findings"]
    for path in paths:  # Zhao reads DX only: the CT task is refused him, and all that hangs on it
        answer = api.get("zhao", path)
        assert answer.status_code == 403 and "not credentialed" in answer.text, (path, answer.text)
    assert api.get("li", f"/api/tasks/{task.id}").status_code == 200  # granted: not a refusal
    assert api.get(None, f"/api/tasks/{task.id}").status_code == 401  # nobody: no record
    assert api.get("zhao", "/api/tasks/999999").status_code == 404  # no such task: nothing refused

    denied = api.denied()
    assert [r.detail["path"] for r in denied] == paths
    for record in denied:
        assert (record.username, record.role, record.action, record.outcome) == (
            "zhao",
            "reader",
            "open-task",
            "denied",
        )
        assert (record.study_uid, record.patient_id, record.site_id) == (uid, patient_id, task.site_id)
        assert record.source == "127.0.0.1" and record.at is not None
        assert record.detail["task_id"] == task.id and "not credentialed" in record.detail["reason"]

    # The QA officer of the task's consortium finds them by patient and outcome.
    found = api.get("qa", "/api/audit", patient_id=patient_id, outcome="denied").json()["records"]
    assert sorted((r["username"], r["action"], r["detail"]["path"]) for r in found) == sorted(
        ("zhao", "open-task", p) for p in paths
    )
    _verify_intact(api)


def test_a_study_of_another_site_asked_for_by_qido_or_wado_is_a_404_audited_as_denied(api: DeniedApi) -> None:
    world = api.world
    with transaction(world.services.sessions) as session:
        xiyang = session.scalars(select(Site.id).where(Site.name == "Xiyang Clinic")).one()
    uid = world.ingest_study(site_id=xiyang)
    with transaction(world.services.sessions) as session:
        patient_id = session.scalars(select(Study.patient_id).where(Study.study_uid == uid)).one()
        first = session.execute(
            select(Series.series_uid, Instance.sop_instance_uid)
            .join(Instance, Instance.series_pk == Series.id)
            .join(Study, Study.id == Series.study_pk)
            .where(Study.study_uid == uid)
        ).first()
    assert first is not None
    series, sop = first
    frames = f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}/frames/1"
    asked = {
        "search": f"/dicomweb/studies/{uid}/series",
        "metadata": f"/dicomweb/studies/{uid}/metadata",
        "frames": frames,
    }
    for path in asked.values():
        answer = api.get("li", path)
        assert answer.status_code == 404 and f"study {uid} here" in answer.text, (path, answer.text)
    assert api.get("li", frames).status_code == 404  # the viewer asks again: still one record per action
    assert api.get("li", "/dicomweb/studies/1.2.3.999/metadata").status_code == 404  # absent: nothing refused
    assert api.get("li", "/dicomweb/studies/1.2.3.999/series").status_code == 404
    assert api.get(None, f"/dicomweb/studies/{uid}/metadata").status_code == 401  # nobody: no record

    denied = api.denied()
    assert sorted(r.action for r in denied) == sorted(asked)
    for record in denied:
        assert (record.username, record.role, record.outcome, record.source) == ("li", "reader", "denied", "127.0.0.1")
        assert (record.study_uid, record.patient_id, record.site_id) == (uid, patient_id, xiyang)
        assert record.detail["path"] == asked[record.action]

    # The records are about Xiyang's patient: Xiyang's QA sees them, Dongtai's does not.
    seen = api.get("qa-xiyang", "/api/audit", patient_id=patient_id, outcome="denied").json()["records"]
    assert sorted(r["action"] for r in seen) == sorted(asked) and {r["username"] for r in seen} == {"li"}
    assert api.get("qa", "/api/audit", patient_id=patient_id).json()["records"] == []
    _verify_intact(api)
