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
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from reading.qa.staffing import Staffing
from reading.qa.timeline import INTERVALS, SPANS, interval_minutes

# The attribute of each interval's minutes in a row the database measured (measure.py).
MEASURED: Final = tuple(f"{name}_minutes" for name in (*INTERVALS, *SPANS))

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
    """Figures per group of ``rows`` (with the milestone attributes of ``qa_turnaround``):
    counts, SLA compliance and the percentiles of every interval. ``zones(consortium_id)``
    gives a consortium's time zone (for periods); ``names(dimension, value)`` the label of a
    site, reader or consortium id. Raises ``FigureError`` for an unknown grouping."""
    check_groups(group_by)
    local_period = LocalPeriod(period, zones)
    values = [_attribute(dimension, local_period) for dimension in group_by]
    grouped: dict[Any, list[Sequence[Any]]] = {}
    for row in rows:
        measured = (sla_state(row, now), *interval_minutes(row).values())
        grouped.setdefault(tuple(value(row) for value in values), []).append(measured)
    return _tally(grouped, sla_at=0, minutes_at=range(1, 1 + len(MEASURED)), group_by=group_by, names=names)


# The columns a measured row carries for each grouping (``turnaround_measured``).
DIMENSION_COLUMNS: Final = {
    "consortium": ("consortium_id",),
    "site": ("site_id",),
    "site_tier": ("site_tier",),
    "reader": ("reader_id",),
    "tier": ("tier",),
    "modality": ("modality",),
    "body_part": ("body_part",),
    "priority": ("priority",),
    "period": ("consortium_id", "arrived_epoch"),  # arrived_at in seconds since the epoch
}


def turnaround_measured(
    rows: Iterable[Sequence[Any]],
    *,
    columns: Sequence[str],
    group_by: Sequence[str],
    period: Period = "month",
    zones: Callable[[int], ZoneInfo],
    names: Callable[[str, Any], str],
) -> list[Group]:
    """The same figures from rows the database measured (``reading/qa/measure.py``): tuples
    whose items ``columns`` names — the columns of each grouping (``DIMENSION_COLUMNS``),
    ``sla`` and the minutes of every interval (``MEASURED``). Read by position, a group's
    values gathered by list comprehension: attribute access and a loop of appends per row
    cost 0.8 s per 100,000 rows (bench/qa.py)."""
    check_groups(group_by)
    at = {name: i for i, name in enumerate(columns)}
    grouped: dict[Any, list[Sequence[Any]]] = {}
    plain = [at[DIMENSION_COLUMNS[d][0]] for d in group_by if d != "period"]
    key_of = _values_at(plain)
    if "period" in group_by:
        local_period = LocalPeriod(period, zones)
        consortium, arrived = at["consortium_id"], at["arrived_epoch"]
        for row in rows:  # keyed (period, *the others) here, in the order asked below
            grouped.setdefault((local_period(row[consortium], row[arrived]), *key_of(row)), []).append(row)
        others = [d for d in group_by if d != "period"]
        where = [0 if d == "period" else 1 + others.index(d) for d in group_by]
        grouped = {tuple(key[i] for i in where): found for key, found in grouped.items()}
    else:
        for row in rows:
            grouped.setdefault(key_of(row), []).append(row)
    minutes_at = [at[name] for name in MEASURED]
    return _tally(grouped, sla_at=at["sla"], minutes_at=minutes_at, group_by=group_by, names=names)


def _values_at(positions: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A row's items at ``positions`` as a tuple (``itemgetter`` of one gives the bare item)."""
    if len(positions) > 1:
        return itemgetter(*positions)
    if positions:
        only = positions[0]
        return lambda row: (row[only],)
    return lambda row: ()


def check_groups(group_by: Sequence[str]) -> None:
    """Raises ``FigureError`` naming an unknown grouping and the known ones."""
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise FigureError(f"cannot group by {', '.join(unknown)}; known: {', '.join(GROUPS)}")


def _tally(
    grouped: dict[Any, list[Sequence[Any]]],
    *,
    sla_at: int,
    minutes_at: Sequence[int],
    group_by: Sequence[str],
    names: Callable[[str, Any], str],
) -> list[Group]:
    """Figures of rows grouped by their raw values (ids: one name lookup per group, not per
    row); groups whose labels are equal are merged — groups are keyed by what QA sees."""
    groups: dict[tuple[str, ...], Group] = {}
    for values, found in grouped.items():
        key = {d: _label(d, v, names) for d, v in zip(group_by, values, strict=True)}
        group = groups.setdefault(tuple(key.values()), Group(key))
        states = [row[sla_at] for row in found]
        group.count += len(found)
        group.met += states.count("met")
        group.breached += states.count("breached")
        for name, i in zip((*INTERVALS, *SPANS), minutes_at, strict=True):
            group.minutes[name] += [m for row in found if (m := row[i]) is not None]
    return [groups[k] for k in sorted(groups)]


class LocalPeriod:
    """``period_of`` for many instants given as seconds since the epoch (UTC): a consortium's
    UTC offset is looked up once per UTC day (per instant on a day the offset changes) and a
    label once per local day — a time-zone conversion per row cost 0.4 s per 100,000 rows."""

    def __init__(self, period: Period, zones: Callable[[int], ZoneInfo]) -> None:
        self.period, self.zones = period, zones
        self._offsets: dict[tuple[int, int], float | None] = {}  # (consortium, UTC day) → seconds
        self._labels: dict[int, str] = {}  # local day (days since the epoch) → label

    def __call__(self, consortium_id: int, seconds: float) -> str:
        key = (consortium_id, int(seconds // _DAY))
        offset = self._offsets.get(key, _UNKNOWN)
        if offset is _UNKNOWN:
            zone = self.zones(consortium_id)
            midnight = datetime.fromtimestamp(key[1] * _DAY, UTC)
            first = midnight.astimezone(zone).utcoffset()
            last = (midnight + timedelta(seconds=_DAY - 1)).astimezone(zone).utcoffset()
            offset = self._offsets[key] = first.total_seconds() if first is not None and first == last else None
        if offset is None:
            return period_of(datetime.fromtimestamp(seconds, UTC), self.period, self.zones(consortium_id))
        local = int((seconds + offset) // _DAY)
        label = self._labels.get(local)
        if label is None:
            label = self._labels[local] = _period_label(_EPOCH + timedelta(days=local), self.period)
        return label


_DAY: Final = 86_400
_EPOCH: Final = date(1970, 1, 1)
_UNKNOWN: Final = -1.0e18  # not looked up yet (no real offset)


def _period_label(day: date, period: Period) -> str:
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year:04d}-{day.month:02d}"


def _attribute(dimension: str, local_period: LocalPeriod) -> Callable[[Any], Any]:
    if dimension == "period":
        return lambda row: local_period(row.consortium_id, _arrival(row).timestamp())
    return attrgetter(DIMENSION_COLUMNS[dimension][0])


def _label(dimension: str, value: Any, names: Callable[[str, Any], str]) -> str:
    if dimension == "period":
        return str(value)
    if dimension in ("consortium", "site"):
        return names(dimension, value)
    if dimension == "reader":
        return names("reader", value) if value is not None else "—"
    return str(value) if value else "—"


def _arrival(row: Any) -> datetime:
    """When the study arrived: ``arrived_at`` of the table, or the first image, or the queueing."""
    arrived: datetime | None = getattr(row, "arrived_at", None)
    return arrived or row.received_at or row.queued_at


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
