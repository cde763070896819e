"""On-duty rosters: whether a reader's window covers a moment, in the consortium's time zone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    """A weekly window (``weekday`` 0 = Monday, None = every day) or one on ``on_date``;
    ``end`` <= ``start`` runs past midnight into the next day."""

    start: time
    end: time
    weekday: int | None = None
    on_date: date | None = None

    def _starts_on(self, day: date) -> bool:
        if self.on_date is not None:
            return day == self.on_date
        return self.weekday is None or day.weekday() == self.weekday

    def covers(self, local: datetime) -> bool:
        moment = local.time()
        overnight = self.end <= self.start
        if not overnight:
            return self._starts_on(local.date()) and self.start <= moment < self.end
        # An overnight window started today (after start) or yesterday (before end).
        if moment >= self.start and self._starts_on(local.date()):
            return True
        return moment < self.end and self._starts_on(local.date() - timedelta(days=1))


def parse_hhmm(text: str) -> time:
    """``08:00`` → time; raises ``ValueError`` naming the expected form."""
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"a roster time is HH:MM (24 h), not {text!r}") from None


def on_duty(windows: Iterable[Window], now: datetime, timezone: str) -> bool:
    """Whether any window covers ``now`` (timezone-aware) in ``timezone``."""
    local = now.astimezone(ZoneInfo(timezone))
    return any(window.covers(local) for window in windows)


def duty_spans(
    windows: Iterable[Window], start: datetime, end: datetime, timezone: str
) -> list[tuple[datetime, datetime]]:
    """The stretches of ``[start, end)`` (timezone-aware) that the windows cover, in UTC, merged
    and in order — what ``on_duty`` answers moment by moment, as intervals (QA asks who was on
    duty while a task waited). Local days are walked in ``timezone``, so a DST change moves the
    UTC ends of a window as it moves the clock on the wall."""
    if end <= start:
        return []
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()
    found: list[tuple[datetime, datetime]] = []
    for window in windows:
        day = first
        while day <= last:
            if window._starts_on(day):
                opens = datetime.combine(day, window.start, tzinfo=zone).astimezone(UTC)
                closes_on = day + timedelta(days=1) if window.end <= window.start else day
                closes = datetime.combine(closes_on, window.end, tzinfo=zone).astimezone(UTC)
                begin, finish = max(opens, start), min(closes, end)
                if begin < finish:
                    found.append((begin, finish))
            day += timedelta(days=1)
    found.sort()
    merged: list[tuple[datetime, datetime]] = []
    for begin, finish in found:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def describe_local(now: datetime, timezone: str) -> str:
    """``02:00`` in the consortium's time zone, for routing explanations."""
    return now.astimezone(ZoneInfo(timezone)).strftime("%H:%M")
