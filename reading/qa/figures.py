"""Turnaround figures and the SLA breach list from ``qa_turnaround`` rows — plain Python.

Percentiles interpolate linearly between order statistics (numpy's default, "type 7"): the
p50 of 10, 20, 30, 40 minutes is 25. SLA compliance counts the closed tasks signed by their
deadline against those signed after it or still open past it; a task escalated to the
provincial tier is judged on its provincial task, and open tasks within their deadline are not
counted yet.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from reading.qa.staffing import Staffing
from reading.qa.timeline import INTERVALS, SPANS, interval_minutes

Period = Literal["day", "week", "month"]
GROUPS: Final = ("consortium", "site", "site_tier", "reader", "tier", "modality", "body_part", "priority", "period")
PERCENTILES: Final = (50, 90, 95)
# The intervals a reading deadline covers (from queued to signed).
_SLA_INTERVALS: Final = ("queued", "claimed", "preliminary", "signed")
# What each interval is, for the breach list ("waited 47 min in the queue").
_DOING: Final = {
    "stable": "arriving (first image to stable)",
    "ai": "in AI pre-screening",
    "queued": "being routed",
    "claimed": "in the queue before a reader claimed it",
    "preliminary": "being read to a preliminary report",
    "signed": "being read and signed",
    "delivered": "on its way to the site",
}


class FigureError(ValueError):
    """A grouping or period the figures do not know; the message lists the known ones."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (linear interpolation between order statistics)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def period_of(at: datetime, period: Period, zone: ZoneInfo) -> str:
    """The day (2026-10-07), ISO week (2026-W41) or month (2026-10) of ``at`` in ``zone``."""
    local = at.astimezone(zone)
    if period == "day":
        return local.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")


def sla_state(row: Any, now: datetime) -> str | None:
    """``met``, ``breached`` or ``None`` (still open within its deadline, or escalated)."""
    if row.escalated:
        return None
    if row.signed_at is not None:
        return "met" if row.signed_at <= row.deadline_at else "breached"
    return "breached" if now > row.deadline_at else None


@dataclass
class Group:
    key: dict[str, str]
    count: int = 0
    met: int = 0
    breached: int = 0
    minutes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def compliance(self) -> float | None:
        judged = self.met + self.breached
        return self.met / judged if judged else None

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for name in (*INTERVALS, *SPANS):
            values = self.minutes.get(name, [])
            figures[name] = {"n": len(values)} | {
                f"p{q}": round(percentile(values, q), 2) if values else None for q in PERCENTILES
            }
        return {
            **self.key,
            "count": self.count,
            "sla": {"met": self.met, "breached": self.breached, "compliance": self.compliance},
            "minutes": figures,
        }


def turnaround(
    rows: Iterable[Any],
    *,
    group_by: Sequence[str],
    now: datetime,
    period: Period = "month",
    zones: Callable[[int], ZoneInfo],
    names: Callable[[str, Any], str],
) -> list[Group]:
    """Figures per group of ``rows``: counts, SLA compliance and the percentiles of every
    interval. ``zones(consortium_id)`` gives a consortium's time zone (for periods);
    ``names(dimension, value)`` the label of a site, reader or consortium id. Raises
    ``FigureError`` for an unknown grouping."""
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise FigureError(f"cannot group by {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    groups: dict[tuple[str, ...], Group] = {}
    for row in rows:
        key = {dimension: _value(row, dimension, period, zones, names) for dimension in group_by}
        group = groups.setdefault(tuple(key.values()), Group(key))
        group.count += 1
        state = sla_state(row, now)
        if state == "met":
            group.met += 1
        elif state == "breached":
            group.breached += 1
        for name, minutes in interval_minutes(row).items():
            if minutes is not None:
                group.minutes[name].append(minutes)
    return [groups[k] for k in sorted(groups)]


def _value(
    row: Any, dimension: str, period: Period, zones: Callable[[int], ZoneInfo], names: Callable[[str, Any], str]
) -> str:
    if dimension == "period":
        return period_of(row.received_at or row.queued_at, period, zones(row.consortium_id))
    if dimension == "consortium":
        return names("consortium", row.consortium_id)
    if dimension == "site":
        return names("site", row.site_id)
    if dimension == "reader":
        return names("reader", row.reader_id) if row.reader_id is not None else "—"
    value = getattr(row, dimension)
    return str(value) if value else "—"


@dataclass(frozen=True)
class Breach:
    task_id: int
    study_uid: str
    site_id: int
    tier: str
    priority: str
    deadline_at: datetime
    late_minutes: float
    open: bool
    interval: str  # the longest interval of the task
    interval_minutes: float
    cause: str
    staffing: Staffing | None = None  # who could have claimed it, when the queue wait ran long


# ``staffing(row, start, end)``: who could have claimed the task from ``start`` to ``end``.
StaffingOf = Callable[[Any, datetime, datetime], Staffing]


def breaches(rows: Iterable[Any], now: datetime, staffing: StaffingOf | None = None) -> list[Breach]:
    """Every task past its deadline — signed late, or open past it — with the interval that ran
    longest and a sentence saying so, latest deadline first. When the wait in the queue ran
    longest and ``staffing`` is given, the sentence adds its cause from the rosters ("…; no
    county reader on duty", "…; 2 county readers on duty: queue backlog")."""
    found = []
    for row in rows:
        if sla_state(row, now) != "breached":
            continue
        minutes = interval_minutes(row)
        is_open = row.signed_at is None
        if is_open:
            # The open interval runs to now: after the last milestone reached.
            reached = [(n, at) for n, at in _reached(row) if at is not None]
            name_next = _next_interval(reached[-1][0])
            minutes[name_next] = (now - reached[-1][1]).total_seconds() / 60.0
        task_minutes = {n: v for n, v in minutes.items() if n in _SLA_INTERVALS and v is not None}
        interval, longest = max(task_minutes.items(), key=lambda kv: kv[1]) if task_minutes else ("queued", 0.0)
        finished = row.signed_at or now
        late = (finished - row.deadline_at).total_seconds() / 60.0
        cause = f"{longest:.0f} min {_DOING[interval]}" + (" (still open)" if is_open else "")
        staffed = None
        if interval == "claimed" and staffing is not None:
            staffed = staffing(row, row.queued_at, row.claimed_at or now)
            cause += f"; {staffed.describe()}"
        found.append(
            Breach(
                row.task_id,
                row.study_uid,
                row.site_id,
                row.tier,
                row.priority,
                row.deadline_at,
                round(late, 1),
                is_open,
                interval,
                round(longest, 1),
                cause,
                staffed,
            )
        )
    return sorted(found, key=lambda b: b.deadline_at, reverse=True)


def _reached(row: Any) -> list[tuple[str, datetime | None]]:
    return [
        ("queued", row.queued_at),
        ("claimed", row.claimed_at),
        ("preliminary", row.preliminary_at),
        ("signed", row.signed_at),
    ]


def _next_interval(last: str) -> str:
    """The interval a task is in after reaching ``last`` (an open task: not signed yet)."""
    return {"queued": "claimed", "claimed": "signed", "preliminary": "signed"}.get(last, "signed")
