"""The failure throttle on its own, with a clock the test turns: blocks at the limit, lets go
when the oldest failure leaves the window, forgives, and forgets a spray of one-off keys."""

from __future__ import annotations

import pytest

from pacs.identity import throttle
from pacs.identity.throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_at_the_limit_until_the_window_passes_and_forgives() -> None:
    clock = Clock()
    gate = FailureThrottle(3, 60, clock=clock)
    assert [gate.fail("li").blocked for _ in range(3)] == [False, False, True]
    assert gate.check("li").blocked and gate.check("li").retry_after_s == 61
    assert not gate.check("wang").blocked  # one key's failures are not another's
    clock.now += 60
    assert not gate.check("li").blocked
    gate.fail("li")
    gate.forgive("li")
    assert gate.fail("li") == throttle.Verdict(False)


def test_a_spray_of_one_off_keys_is_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "SWEEP_ABOVE", 100)
    clock = Clock()
    gate = FailureThrottle(5, 60, clock=clock)
    for n in range(100):
        gate.fail(f"guess-{n}")
    clock.now += 61
    gate.fail("one-more")
    assert len(gate._failures) == 1
