"""The failure throttle on its own, against the real index (SQLite and PostgreSQL) with a clock
the test turns: blocks at the limit, lets go when the oldest failure leaves the window,
forgives, is shared by two throttles over the same index (two web processes), and forgets
what left the window — a spray of one-off keys included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from pacs.identity import throttle
from pacs.identity.throttle import FailureThrottle
from pacs.index.db import transaction
from pacs.index.models import AuthFailure
from pacs.service import Services


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def rows(services: Services) -> int:
    with transaction(services.sessions, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(AuthFailure)) or 0)


def test_blocks_at_the_limit_until_the_window_passes_and_forgives(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    clock = Clock()
    gate = FailureThrottle(services.sessions, 3, 60, clock=clock)
    assert [gate.fail("addr:10.0.0.7").blocked for _ in range(3)] == [False, False, True]
    assert gate.check("addr:10.0.0.7") == throttle.Verdict(True, 61)
    assert not gate.check("addr:10.0.0.8").blocked  # one key's failures are not another's
    clock.now += timedelta(seconds=60)
    assert not gate.check("addr:10.0.0.7").blocked
    gate.fail("login:li")
    gate.forgive("login:li")
    assert gate.fail("login:li") == throttle.Verdict(False)


def test_two_web_processes_count_the_same_failures(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    clock = Clock()
    first, second = (FailureThrottle(services.sessions, 4, 60, clock=clock) for _ in range(2))
    verdicts = [gate.fail("addr:10.0.0.7") for gate in (first, second, first, second)]
    assert [v.blocked for v in verdicts] == [False, False, False, True] and verdicts[-1].newly_blocked
    assert first.check("addr:10.0.0.7").blocked and second.check("addr:10.0.0.7").blocked


def test_what_left_the_window_is_deleted_a_spray_of_one_off_keys_too(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    clock = Clock()
    gate = FailureThrottle(services.sessions, 5, 60, clock=clock)
    for n in range(50):
        gate.fail(f"login:guess-{n}")
    assert rows(services) == 50
    clock.now += timedelta(seconds=61)
    gate.fail("login:one-more")
    assert rows(services) == 1
