"""A study that stops growing becomes stable, with its AI job, in one transaction; a late
instance re-opens it and queues a new job."""

from __future__ import annotations

import copy
from datetime import timedelta

import pydicom
from sqlalchemy import select

from pacs import events
from pacs.index.db import transaction
from pacs.index.models import Job, JobState, Study, StudyState
from pacs.stability import StabilityWatcher, mark_stable_studies
from tests.conftest import Fixture, wait_for
from tests.pacs.helpers import current_instances, small_ct
from tests.pacs.test_receiver import pynetdicom_send


def _jobs(fixture: Fixture) -> list[Job]:
    with transaction(fixture.services.sessions) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_quiet_study_becomes_stable_and_queues_ai_job(start_receiver, backend: str) -> None:
    fixture: Fixture = start_receiver(backend, stability_seconds=1.0)
    watcher = StabilityWatcher(fixture.services.sessions, 1.0, 0.1)
    watcher.start()
    try:
        first = small_ct(seed=61)
        second = copy.deepcopy(first)
        second.SOPInstanceUID = pydicom.uid.generate_uid()
        assert pynetdicom_send(fixture.port, [first, second]) == [0, 0]
        stable = wait_for(lambda: fixture.changes(events.STUDY_STABLE), timeout=10)
        assert [c.study_uid for c in stable] == [first.StudyInstanceUID]
        assert stable[0].payload["num_instances"] == 2
        # The receiver left the DICOM JSON headers for later; they exist once the study is stable.
        instances = current_instances(fixture.services)
        assert len(instances) == 2 and all(i.header is not None for i in instances)
        assert {i.header["00080018"]["Value"][0] for i in instances if i.header} == {
            first.SOPInstanceUID,
            second.SOPInstanceUID,
        }
        jobs = _jobs(fixture)
        assert [(j.kind, j.payload["study_uid"], j.state) for j in jobs] == [
            (events.JOB_AI_PRESCREEN, first.StudyInstanceUID, JobState.PENDING)
        ]

        # A late instance re-opens the study; its next stability queues a second job.
        late = copy.deepcopy(first)
        late.SOPInstanceUID = pydicom.uid.generate_uid()
        assert pynetdicom_send(fixture.port, [late]) == [0]
        reopened = fixture.changes(events.STUDY_REOPENED)
        assert [c.payload["sop_instance_uid"] for c in reopened] == [late.SOPInstanceUID]
        wait_for(lambda: len(fixture.changes(events.STUDY_STABLE)) == 2, timeout=10)
        assert len(_jobs(fixture)) == 2
        with transaction(fixture.services.sessions) as session:
            study = session.scalar(select(Study))
            assert study is not None
            assert (study.state, study.num_instances) == (StudyState.STABLE, 3)
    finally:
        watcher.stop()


def test_growing_study_is_not_stable(start_receiver) -> None:
    fixture: Fixture = start_receiver()
    ds = small_ct(seed=62)
    assert pynetdicom_send(fixture.port, [ds]) == [0]
    with transaction(fixture.services.sessions) as session:
        last = session.scalar(select(Study.last_received_at))
    assert last is not None
    # Just inside the delay: not stable; just past it: stable, exactly once.
    assert mark_stable_studies(fixture.services.sessions, timedelta(seconds=60), now=last + timedelta(seconds=59)) == []
    marked = mark_stable_studies(fixture.services.sessions, timedelta(seconds=60), now=last + timedelta(seconds=61))
    assert marked == [ds.StudyInstanceUID]
    assert (
        mark_stable_studies(fixture.services.sessions, timedelta(seconds=60), now=last + timedelta(seconds=120)) == []
    )
    assert len(_jobs(fixture)) == 1
