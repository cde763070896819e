"""Jobs taken with a lease: two workers racing for 50 jobs each run once (SQLite and
PostgreSQL); a worker killed mid-job leaves it to be taken again after the lease; a job that
keeps failing stops after its retry budget, with the reason, and the study goes on to reading."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from ai_models import events
from pacs import events as pacs_events
from pacs.index.db import transaction
from pacs.index.models import Job, JobState
from pacs.index.types import utcnow
from pacs.jobs import take_leased
from tests.ai_models.conftest import QC, ROOT, AiWorld, fake_entry
from tests.conftest import VENV_BIN, receiver_env, wait_for


@pytest.mark.parametrize("backend", ["sqlite-folder", pytest.param("postgres-s3", marks=pytest.mark.postgres)])
def test_two_workers_racing_for_50_jobs_run_each_once(make_ai_world: Callable[..., AiWorld], backend: str) -> None:
    world = make_ai_world(backend)
    with transaction(world.services.sessions) as session:
        for number in range(50):
            # Studies not in the index: each job is a quick skip, so the race is all about the take.
            session.add(Job(kind=pacs_events.JOB_AI_PRESCREEN, payload={"study_uid": f"9.9.{number}"}))
    workers = [world.worker(), world.worker()]
    start = threading.Barrier(2)

    def drain(index: int) -> None:
        start.wait()
        while workers[index].run_once():
            pass

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    skipped = world.changes(events.AI_SKIPPED)
    assert sorted(c.study_uid or "" for c in skipped) == sorted(f"9.9.{n}" for n in range(50))  # each once
    jobs = world.jobs()
    assert {(j.state, j.attempts) for j in jobs} == {(JobState.DONE, 1)}
    by_worker = Counter(j.lease_owner for j in jobs)
    assert set(by_worker) <= {w.owner for w in workers} and sum(by_worker.values()) == 50
    assert Counter(c.actor for c in skipped) == by_worker


def test_a_worker_killed_mid_job_leaves_it_to_another_after_the_lease(
    make_ai_world: Callable[..., AiWorld],
) -> None:
    world = make_ai_world()
    uid = world.ingest()
    world.stable()
    marker = world.data / f"slow-started-{os.getpid()}"
    marker.unlink(missing_ok=True)
    registry_file = world.services.settings.home / "registry.json"
    slow = fake_entry("slow", "SlowModel", input_spec={"marker": str(marker), "seconds": 120})
    registry_file.write_text(
        '{"models": [' + QC.model_dump_json() + "," + slow.model_dump_json() + "]}", encoding="utf-8"
    )
    (world.services.settings.home / "cards").mkdir(exist_ok=True)
    env = receiver_env(
        world.services.settings.home, ai_registry=registry_file, ai_lease_s=2, ai_poll_s=0.1, ai_model_timeout_s=300
    )
    env["PYTHONPATH"] = str(ROOT)  # the model process imports the fake models
    process = subprocess.Popen(
        [str(VENV_BIN / "yunying"), "worker", "ai"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the model process dies with it
    )
    try:
        wait_for(marker.exists, timeout=60)  # the job is held and its slow model running
        [held] = world.jobs()
        assert held.state == JobState.RUNNING and held.lease_owner
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    worker = world.worker()  # QC only: the slow model is not in its registry
    assert not worker.run_once()  # the lease has not run out yet
    wait_for(lambda: world.jobs()[0].lease_expires_at < utcnow(), timeout=10)
    assert worker.run_once()
    [job] = world.jobs()
    assert (job.state, job.attempts, job.lease_owner) == (JobState.DONE, 2, worker.owner)
    assert [c.actor for c in world.changes(events.AI_DONE, uid)] == [worker.owner]
    assert world.changes(pacs_events.STUDY_READY_FOR_READING, uid)


def test_a_job_that_keeps_failing_stops_with_its_reason_and_the_study_goes_on(
    make_ai_world: Callable[..., AiWorld], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_ai_world()
    uid = world.ingest()
    world.stable()
    with transaction(world.services.sessions) as session:
        session.query(Job).update({Job.max_attempts: 2})
    worker = world.worker(retry_backoff_s=0)

    def unreadable(*_: object, **__: object) -> object:
        raise OSError("object store returned garbage")

    monkeypatch.setattr("ai_models.worker.study_input", unreadable)
    assert worker.run_once()
    assert world.jobs()[0].state == JobState.PENDING and not world.changes(events.AI_FAILED)
    assert worker.run_once()
    [job] = world.jobs()
    assert (job.state, job.attempts) == (JobState.FAILED, 2)
    assert job.last_error == "OSError: object store returned garbage"
    [failed] = world.changes(events.AI_FAILED, uid)
    assert "gave up after 2 attempt(s): OSError: object store returned garbage" in failed.payload["reason"]
    assert world.changes(pacs_events.STUDY_READY_FOR_READING, uid)


def test_a_lease_lost_again_and_again_spends_the_budget(make_ai_world: Callable[..., AiWorld]) -> None:
    world = make_ai_world()
    with transaction(world.services.sessions) as session:
        session.add(Job(kind=pacs_events.JOB_AI_PRESCREEN, payload={"study_uid": "9.9"}, max_attempts=2))
    now = utcnow()
    lease = timedelta(seconds=1)
    for attempt in range(2):  # two workers that die holding it
        taken = take_leased(
            world.services.sessions, pacs_events.JOB_AI_PRESCREEN, owner=f"w{attempt}", lease=lease, now=now
        )
        assert taken is not None and taken.attempts == attempt + 1
        now += timedelta(seconds=2)
    assert take_leased(world.services.sessions, pacs_events.JOB_AI_PRESCREEN, owner="w3", lease=lease, now=now) is None
    [job] = world.jobs()
    assert job.state == JobState.FAILED and "lease of w1 expired; 2 attempts spent" in (job.last_error or "")
