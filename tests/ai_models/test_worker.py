"""The pre-screen worker on real parts (SQLite index, folder store, model child processes):
results recorded and handed to reading, a raising and a hanging model, the DICOM results
retrievable through pacs and never re-opening the study."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pydicom
from sqlalchemy import select

from ai_models import events
from ai_models.records import AiFinding
from ai_models.registry import DEFAULT_REGISTRY, Registry
from ai_models.results import HEATMAP_DESCRIPTION, MANUFACTURER, SERIES_DESCRIPTION
from ai_models.worker import AI_CALLING_AE
from pacs import events as pacs_events
from pacs.dicomweb.retrieve import locate
from pacs.identity.users import Scope
from pacs.index.db import transaction
from pacs.index.models import Instance, JobState, Series, Study, StudyState
from pacs.stability import mark_stable_studies
from tests.ai_models.conftest import QC, AiWorld, fake_entry


def _texts(ds: pydicom.Dataset) -> list[str]:
    """Every text value and concept name in an SR content tree."""
    found = []
    for item in ds.get("ContentSequence", []):
        if "TextValue" in item:
            found.append(str(item.TextValue))
        for code in [*item.get("ConceptNameCodeSequence", []), *item.get("ConceptCodeSequence", [])]:
            found.append(str(code.CodeMeaning))
        found += _texts(item)
    return found


def _registry(*entries: object) -> Registry:
    return Registry([QC, *entries], DEFAULT_REGISTRY.parent)  # type: ignore[list-item]


def test_a_study_is_prescreened_recorded_and_handed_to_reading(make_ai_world: Callable[..., AiWorld]) -> None:
    world = make_ai_world()
    uid = world.ingest(kind="head")
    world.stable()
    worker = world.worker()
    assert worker.run_once()
    assert not worker.run_once()  # one job, taken once

    [job] = world.jobs()
    assert (job.state, job.attempts, job.lease_owner) == (JobState.DONE, 1, worker.owner)
    [done] = world.changes(events.AI_DONE, uid)
    assert done.payload["model"] == "image-qc" and done.payload["positives"] == 0
    [ready] = world.changes(pacs_events.STUDY_READY_FOR_READING, uid)
    assert ready.seq > done.seq and "1 model(s) done" in ready.payload["reason"]
    [route] = world.jobs(pacs_events.JOB_ROUTE_STUDY)
    assert route.payload["ai"] == {"priority": None, "validated": False, "flags": []}  # QC passed: nothing flagged
    with transaction(world.services.sessions) as session:
        labels = sorted(f.label for f in session.scalars(select(AiFinding).where(AiFinding.study_uid == uid)))
    assert labels == sorted(
        [
            "qc.slice_spacing",
            "qc.missing_slices",
            "qc.body_part",
            "qc.truncated_fov",
            "qc.noise",
            "qc.saturation",
            "qc.orientation",
        ]
    )


def test_a_model_that_raises_is_ai_failed_and_the_study_still_reaches_reading(
    make_ai_world: Callable[..., AiWorld],
) -> None:
    world = make_ai_world()
    uid = world.ingest()
    world.stable()
    worker = world.worker(_registry(fake_entry("exploding", "RaisingModel")))
    assert worker.run_once()

    [failed] = world.changes(events.AI_FAILED, uid)
    assert failed.payload["model"] == "exploding"
    assert failed.payload["reason"] == "RuntimeError: weights exploded"
    assert [c.payload["model"] for c in world.changes(events.AI_DONE, uid)] == ["image-qc"]  # the others still count
    [ready] = world.changes(pacs_events.STUDY_READY_FOR_READING, uid)
    assert "1 model(s) failed" in ready.payload["reason"]
    assert world.jobs()[0].state == JobState.DONE  # a model's failure is a result, not a retry


def test_a_hung_model_is_killed_at_its_time_limit(make_ai_world: Callable[..., AiWorld]) -> None:
    world = make_ai_world()
    uid = world.ingest()
    world.stable()
    worker = world.worker(_registry(fake_entry("stuck", "HangingModel", timeout_s=1.5)))
    assert worker.run_once()

    [failed] = world.changes(events.AI_FAILED, uid)
    assert (failed.payload["model"], failed.payload["reason"]) == ("stuck", "timed out after 1.5 s")
    assert world.changes(pacs_events.STUDY_READY_FOR_READING, uid)
    # The killed process is replaced: the next study's models run again.
    second = world.ingest(seed=2)
    world.stable()
    assert worker.run_once()
    assert [c.payload["model"] for c in world.changes(events.AI_DONE, second)] == ["image-qc"]


def test_results_are_new_series_retrievable_through_pacs_and_do_not_reopen_the_study(
    make_ai_world: Callable[..., AiWorld],
) -> None:
    world = make_ai_world()
    uid = world.ingest(dx=True, seed=3)
    world.stable()
    before = world.study(uid)
    worker = world.worker(_registry(fake_entry("chest-test", "HeatmapModel", triage={"pneumothorax": "urgent"})))
    assert worker.run_once()

    with transaction(world.services.sessions) as session:
        located = locate(session, Scope(site_ids=None), uid)
        derived = {
            row.series_description: row.modality
            for row in session.scalars(select(Series).join(Study).where(Study.study_uid == uid))
            if row.series_description != "Chest PA"
        }
        ae = set(session.scalars(select(Instance.calling_ae).where(Instance.sop_class_uid != located[0].sop_class_uid)))
    assert derived == {SERIES_DESCRIPTION: "SR", HEATMAP_DESCRIPTION: "OT"}
    assert ae == {AI_CALLING_AE}
    objects = {
        item.series_uid: pydicom.dcmread(io.BytesIO(world.services.store.get(item.stored.object_key)))
        for item in located
    }
    sr = next(ds for ds in objects.values() if ds.Modality == "SR")
    heat = next(ds for ds in objects.values() if ds.Modality == "OT")
    assert sr.Manufacturer == heat.Manufacturer == MANUFACTURER
    assert sr.SpecificCharacterSet == "ISO_IR 192" and sr.StudyInstanceUID == heat.StudyInstanceUID == uid
    text = " ".join(_texts(sr))
    assert "image-qc" in text and "chest-test" in text and "QC passed" in text and "pneumothorax" in text
    assert heat.PhotometricInterpretation == "RGB" and heat.pixel_array.shape == (64, 64, 3)
    # What the viewer's overlay relies on: the source slice by reference, and a blend it can undo
    # (R − B = 0.5 × heat where the heat is above 0.2; G − B = heat × (R − B); elsewhere grey).
    source = next(ds for ds in objects.values() if ds.Modality == "DX")
    [reference] = heat.SourceImageSequence
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == source.SOPClassUID
    rgb = heat.pixel_array.astype(np.int32)
    alpha, green = rgb[..., 0] - rgb[..., 2], rgb[..., 1] - rgb[..., 2]
    assert np.all(np.abs(alpha[16:32, 16:32] - 128) <= 1) and np.all(np.abs(green[16:32, 16:32] - 128) <= 1)
    outside = np.ones((64, 64), bool)
    outside[16:32, 16:32] = False
    assert np.all(alpha[outside] == 0) and np.all(green[outside] == 0)

    after = world.study(uid)
    assert (after.state, after.last_received_at) == (StudyState.STABLE, before.last_received_at)
    assert not world.changes(pacs_events.STUDY_REOPENED, uid)
    assert mark_stable_studies(world.services.sessions, timedelta(0)) == []
    assert len(world.jobs()) == 1 and not worker.run_once()  # no second pre-screen, ever

    [route] = world.jobs(pacs_events.JOB_ROUTE_STUDY)
    ai = route.payload["ai"]
    assert (ai["priority"], ai["validated"]) == ("urgent", False)  # advisory: reading applies it in demo mode only
    assert [flag["label"] for flag in ai["flags"]] == ["pneumothorax"]


def test_an_unknown_study_is_skipped_and_its_job_done(make_ai_world: Callable[..., AiWorld]) -> None:
    world = make_ai_world()
    from pacs.index.models import Job
    from pacs.index.types import utcnow

    with transaction(world.services.sessions) as session:
        session.add(Job(kind="ai.prescreen", payload={"study_uid": "1.2.3.4"}, next_run_at=utcnow()))
    assert world.worker().run_once()
    [skipped] = world.changes(events.AI_SKIPPED, "1.2.3.4")
    assert "not in the index" in skipped.payload["reason"]
    assert world.jobs()[0].state == JobState.DONE
