"""Reading tasks on a real index (SQLite and PostgreSQL): routing from the hand-off, the
worklist each reader sees, claims with leases, release, escalation, and the sweeper's duties."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from pacs import events as pacs_events
from pacs.index.db import transaction
from pacs.index.models import Change, Study
from pacs.stability import mark_stable_studies
from reading import events
from reading.admin import find_reader
from reading.errors import Conflict, Invalid, OutOfScope
from reading.models import ReadingTask, TaskState
from reading.worklist.queries import Filters, worklist
from reading.worklist.sweeper import expire_leases, flag_breaches, flag_late_images, hand_over_late_ai, route_pending
from reading.worklist.tasks import claim, escalate_by_reader, release, renew
from tests.reading.world import World

LEASE = timedelta(minutes=5)


def kinds(world: World, study_uid: str) -> list[str]:
    with transaction(world.services.sessions) as session:
        return list(session.scalars(select(Change.kind).where(Change.study_uid == study_uid).order_by(Change.seq)))


def listed(world: World, username: str, **filters: object) -> list[int]:
    with transaction(world.services.sessions) as session:
        rows, _ = worklist(session, find_reader(session, username), Filters(**filters), now=world.now())  # type: ignore[arg-type]
        return [row.task.id for row in rows]


def test_a_ready_study_is_queued_for_the_county_and_seen_by_credentialed_readers_only(
    make_world: Callable[..., World], world_backend: str
) -> None:
    world = make_world(world_backend)
    uid = world.ready_study()
    task = world.task_of(uid)
    assert (task.state, task.tier, task.priority) == ("queued", "county", "routine")
    assert "routed to county: township site Fudong" in task.route_reason
    assert kinds(world, uid)[-2:] == [pacs_events.STUDY_READY_FOR_READING, events.TASK_QUEUED]
    assert listed(world, "li") == [task.id] and listed(world, "wang") == [task.id]
    assert listed(world, "zhao") == []  # DX only
    assert listed(world, "chen") == []  # provincial
    assert listed(world, "li", modality="DX") == []


def test_claims_are_exclusive_and_leases_expire(make_world: Callable[..., World], world_backend: str) -> None:
    world = make_world(world_backend)
    uid = world.ready_study()
    task_id = world.task_of(uid).id
    now = world.now()
    with transaction(world.services.sessions) as session:
        claim(session, find_reader(session, "li"), task_id, lease=LEASE, now=now)
    with pytest.raises(Conflict, match="already claimed"), transaction(world.services.sessions) as session:
        claim(session, find_reader(session, "wang"), task_id, lease=LEASE, now=now)
    with pytest.raises(OutOfScope, match="not credentialed"), transaction(world.services.sessions) as session:
        claim(session, find_reader(session, "zhao"), task_id, lease=LEASE, now=now)
    with pytest.raises(Conflict, match="not claimed by you"), transaction(world.services.sessions) as session:
        release(session, find_reader(session, "wang"), task_id, now=now)
    assert expire_leases(world.services.sessions, now=now + LEASE - timedelta(seconds=1)) == 0
    assert expire_leases(world.services.sessions, now=now + LEASE + timedelta(seconds=1)) == 1
    with transaction(world.services.sessions) as session:
        task = session.get_one(ReadingTask, task_id)
        assert (task.state, task.claimed_by) == ("queued", None)
        with pytest.raises(Conflict, match="claim it first"):
            renew(session, find_reader(session, "li"), task_id, lease=LEASE, now=now)
        claim(session, find_reader(session, "wang"), task_id, lease=LEASE, now=now)
        release(session, find_reader(session, "wang"), task_id, now=now)
    assert kinds(world, uid)[-4:] == [
        events.TASK_CLAIMED,
        events.TASK_LEASE_EXPIRED,
        events.TASK_CLAIMED,
        events.TASK_RELEASED,
    ]


def test_escalation_queues_a_provincial_task_with_the_reason(
    make_world: Callable[..., World], world_backend: str
) -> None:
    world = make_world(world_backend)
    uid = world.ready_study()
    county = world.task_of(uid)
    now = world.now()
    with transaction(world.services.sessions) as session:
        li = find_reader(session, "li")
        with pytest.raises(Conflict, match="claim it first"):
            escalate_by_reader(session, li, county.id, reason="complex", now=now)
    with transaction(world.services.sessions) as session:
        li = find_reader(session, "li")
        claim(session, li, county.id, lease=LEASE, now=now)
        with pytest.raises(Invalid, match="needs a reason"):
            escalate_by_reader(session, li, county.id, reason="  ", now=now)
    with transaction(world.services.sessions) as session:
        provincial = escalate_by_reader(
            session, find_reader(session, "li"), county.id, reason="疑似动脉瘤，请上级会诊", now=now
        )
        provincial_id = provincial.id
    provincial = world.task_of(uid)
    assert provincial.id == provincial_id and provincial.tier == "provincial"
    assert provincial.escalated_from_id == county.id and provincial.escalation_reason == "疑似动脉瘤，请上级会诊"
    assert listed(world, "chen") == [provincial.id] and listed(world, "li") == []
    with transaction(world.services.sessions) as session:
        assert session.get_one(ReadingTask, county.id).state == TaskState.ESCALATED
        chen = find_reader(session, "chen")
        claim(session, chen, provincial.id, lease=LEASE, now=now)
        with pytest.raises(Conflict, match="no tier above"):
            escalate_by_reader(session, chen, provincial.id, reason="again", now=now)


def test_no_county_reader_on_duty_routes_to_the_provincial_tier(make_world: Callable[..., World]) -> None:
    world = make_world(county_on_duty=False)
    task = world.task_of(world.ready_study())
    assert task.tier == "provincial"
    assert "no county reader on duty for CT" in task.route_reason


def test_the_sweeper_hands_over_studies_whose_ai_is_late(make_world: Callable[..., World]) -> None:
    world = make_world()
    uid = world.ingest_study()
    mark_stable_studies(world.services.sessions, timedelta(0))
    now = world.now()
    assert hand_over_late_ai(world.services.sessions, timedelta(minutes=2), now=now) == []
    assert hand_over_late_ai(world.services.sessions, timedelta(minutes=2), now=now + timedelta(minutes=3)) == [uid]
    assert hand_over_late_ai(world.services.sessions, timedelta(minutes=2), now=now + timedelta(minutes=4)) == []
    assert route_pending(world.services.sessions, demo=False, now=now + timedelta(minutes=3)) == 1
    assert world.task_of(uid).state == "queued"


def test_a_breached_county_task_escalates_once(make_world: Callable[..., World]) -> None:
    world = make_world()
    uid = world.ready_study()
    county = world.task_of(uid)
    late = county.deadline_at + timedelta(minutes=1)
    assert flag_breaches(world.services.sessions, auto_escalate=True, now=late) == 1
    assert flag_breaches(world.services.sessions, auto_escalate=True, now=late) == 0
    provincial = world.task_of(uid)
    assert provincial.tier == "provincial" and "SLA breached" in (provincial.escalation_reason or "")
    assert events.TASK_SLA_BREACHED in kinds(world, uid)


def test_images_after_a_claim_flag_the_task(make_world: Callable[..., World]) -> None:
    world = make_world()
    uid = world.ready_study(slices=2)
    task = world.task_of(uid)
    with transaction(world.services.sessions) as session:
        claim(session, find_reader(session, "li"), task.id, lease=LEASE, now=world.now())
    assert flag_late_images(world.services.sessions, now=world.now()) == 0
    with transaction(world.services.sessions) as session:  # a late instance moves last_received_at
        study = session.scalars(select(Study).where(Study.study_uid == uid)).one()
        study.last_received_at = world.now()
    assert flag_late_images(world.services.sessions, now=world.now()) == 1
    assert world.task_of(uid).new_images
    assert flag_late_images(world.services.sessions, now=world.now()) == 0


def test_auto_assign_gives_a_new_task_to_the_on_duty_reader_with_the_least_open_work(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    first = world.task_of(world.ready_study()).id
    with transaction(world.services.sessions) as session:  # li holds one task already
        claim(session, find_reader(session, "li"), first, lease=LEASE, now=world.now())
        li, wang = find_reader(session, "li").id, find_reader(session, "wang").id
    uid = world.ingest_study()
    mark_stable_studies(world.services.sessions, timedelta(0))
    with transaction(world.services.sessions) as session:
        from pacs.readiness import mark_ready_for_reading

        mark_ready_for_reading(session, uid, reason="test", actor="test")
    route_pending(world.services.sessions, demo=False, now=world.now(), assign_lease=LEASE)
    task = world.task_of(uid)
    assert (task.state, task.claimed_by) == ("claimed", wang)
    assert li != wang


def test_illegal_transitions_are_refused_and_name_the_allowed_moves() -> None:
    from reading.worklist.transitions import ALLOWED, IllegalTransition

    assert TaskState.SIGNED not in ALLOWED[TaskState.QUEUED]
    error = IllegalTransition(7, TaskState.SIGNED, TaskState.QUEUED)
    assert "task 7 is signed: it cannot become queued (allowed from signed: amended)" in str(error)
    assert "none (the task is closed)" in str(IllegalTransition(8, TaskState.ESCALATED, TaskState.CLAIMED))
