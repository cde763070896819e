"""Claims under concurrency on PostgreSQL: 50 readers claiming from one queue of 200 tasks at
once — every task is claimed exactly once (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from pacs.index.db import transaction
from pacs.index.models import Change
from pacs.index.types import utcnow
from pacs.readiness import mark_ready_for_reading
from pacs.stability import mark_stable_studies
from reading import events
from reading.admin import add_reader, find_reader, set_roster
from reading.models import ReadingTask
from reading.worklist.sweeper import route_pending
from reading.worklist.tasks import claim_next
from tests.reading.world import ALWAYS, World

CLAIMERS = 50
TASKS = 200


@pytest.mark.postgres
@pytest.mark.slow
def test_fifty_claimers_take_two_hundred_tasks_each_exactly_once(make_world: Callable[..., World]) -> None:
    world = make_world("postgres-s3")
    uids = [world.ingest_study(slices=1) for _ in range(TASKS)]
    mark_stable_studies(world.services.sessions, timedelta(0), batch=TASKS)
    with transaction(world.services.sessions) as session:
        for uid in uids:
            assert mark_ready_for_reading(session, uid, reason="test", actor="test")
    while route_pending(world.services.sessions, demo=False, now=utcnow()):
        pass
    with transaction(world.services.sessions) as session:
        for n in range(CLAIMERS):
            add_reader(session, username=f"r{n}", consortium="Dongtai", tier="county", modalities=["CT"])
            set_roster(session, f"r{n}", ALWAYS)
    claimed: dict[str, list[int]] = {f"r{n}": [] for n in range(CLAIMERS)}
    errors: list[BaseException] = []
    start = threading.Barrier(CLAIMERS)

    def claimer(name: str) -> None:
        try:
            start.wait()
            while True:
                with transaction(world.services.sessions) as session:
                    task = claim_next(session, find_reader(session, name), lease=timedelta(minutes=5), now=utcnow())
                    if task is None:
                        return
                    claimed[name].append(task.id)
        except BaseException as exc:  # reported below, with the thread's name
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    every = [task_id for ids in claimed.values() for task_id in ids]
    assert len(every) == TASKS and len(set(every)) == TASKS
    assert sum(1 for ids in claimed.values() if ids) > 1  # the work was shared, not serialised to one
    with transaction(world.services.sessions) as session:
        holders = {t.id: t.claimed_by for t in session.scalars(select(ReadingTask))}
        claim_events = Counter(
            c.payload["task_id"] for c in session.scalars(select(Change).where(Change.kind == events.TASK_CLAIMED))
        )
        readers = {name: find_reader(session, name).id for name in claimed}
    assert all(count == 1 for count in claim_events.values()) and len(claim_events) == TASKS
    for name, ids in claimed.items():
        assert all(holders[task_id] == readers[name] for task_id in ids)
