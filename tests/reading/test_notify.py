"""Critical results reach people: the site's portal alert when raised, the centre's alert when
not acknowledged in time, and any configured adapter (an SMS gateway, WeCom) the same way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

import pytest
from sqlalchemy import select

from pacs.index.db import transaction
from pacs.index.models import Alert
from reading.models import CriticalResult
from reading.notify import CriticalNotice, load_notifiers
from reading.worklist.sweeper import escalate_unacknowledged, notify_critical
from tests.reading.world import World, sign_study


class Recorder:
    """A stand-in for an SMS adapter, loaded by its import path like a real one."""

    heard: ClassVar[list[CriticalNotice]] = []

    def notify(self, notice: CriticalNotice) -> None:
        Recorder.heard.append(notice)


def test_a_critical_result_is_announced_once_per_step(make_world: Callable[..., World]) -> None:
    world = make_world()
    Recorder.heard.clear()
    notifiers = load_notifiers(["tests.reading.test_notify:Recorder"], world.services.sessions)
    sign_study(world, world.ready_study(), critical=True)
    now = world.now()
    assert notify_critical(world.services.sessions, notifiers, now=now) == 1
    assert notify_critical(world.services.sessions, notifiers, now=now) == 0
    assert [(n.step, n.impression) for n in Recorder.heard] == [("raised", "左侧基底节区脑出血（急性期）。")]
    with transaction(world.services.sessions) as session:
        due = session.scalars(select(CriticalResult)).one().ack_due_at
    assert escalate_unacknowledged(world.services.sessions, now=due + timedelta(seconds=1)) == 1
    assert notify_critical(world.services.sessions, notifiers, now=due) == 1
    assert [n.step for n in Recorder.heard] == ["raised", "escalated"]
    with transaction(world.services.sessions) as session:
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
    assert [(a.kind, a.site_id) for a in alerts] == [
        ("critical.raised", world.township_id),
        ("critical.escalated", world.township_id),
    ]
    assert "/api/site/critical/" in alerts[0].message


def test_a_mistyped_adapter_stops_with_the_fix(make_world: Callable[..., World]) -> None:
    world = make_world()
    with pytest.raises(ValueError, match=r"package\.module:Class"):
        load_notifiers(["tests.reading.test_notify:Nobody"], world.services.sessions)
