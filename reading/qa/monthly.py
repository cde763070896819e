"""The figures of a consortium's monthly quality report, from the same functions as the CSV and
XLSX exports (one code path: ``rows_between`` + ``figures.turnaround``/``figures.breaches`` as
``/api/qa/turnaround`` and ``/api/qa/breaches``, ``workload_lines``' ``workload`` as
``/api/qa/workload``, ``ai_figures`` as ``/api/qa/ai``). Each table is read once with set
queries; the rest are passes over those rows in Python — no query per row.

The month is a local month of the consortium. Volume, turnaround, SLA, breaches, escalation and
AI waits are about the tasks whose study *arrived* in it (as ``/api/qa/turnaround?month=``);
the reads (workload) are the tasks *closed* in it (as the settlement counts them), so a study
that arrived on the 31st and was reported on the 1st is in this month's volume and next month's
reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from reading.qa.ai import ModelSite
from reading.qa.figures import PERCENTILES, Breach, Group, breaches, percentile, turnaround
from reading.qa.queries import ai_figures, one_consortium, rows_signed_between, sla_table
from reading.qa.service import month_range, name_lookup, rows_between, zone_lookup
from reading.qa.workload import WorkloadLine, signed_per_site, workload

# What the CLI's progress bar shows, in order (``progress`` is called with each as it starts).
STEPS: Final = (
    "tasks of the month",
    "reads closed in the month",
    "AI findings and feedback",
    "figures",
    "charts and PDF",
)
# A breach's longest interval, as its cause reads in the report.
CAUSES: Final = {
    "queued": "routing (ready → queued)",
    "claimed": "waiting in the queue for a reader",
    "preliminary": "reading to a preliminary report",
    "signed": "reading and signing",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MonthScope:
    """Which consortium and local month a report is about, and when its figures were taken
    (an open task is judged against its deadline at ``now``)."""

    consortium_id: int
    consortium: str
    timezone: str
    month: str
    start: date
    end: date
    now: datetime

    @property
    def days(self) -> list[str]:
        count = (self.end - self.start).days
        return [(self.start + timedelta(days=i)).isoformat() for i in range(count)]


def month_scope(
    session: Session, caller_consortium_id: int | None, consortium: str | None, month: str, now: datetime
) -> MonthScope:
    """Raises ``Invalid`` for a bad month or an ambiguous consortium, ``OutOfScope`` or
    ``NotFound`` for a consortium the caller may not see or that does not exist."""
    start, end = month_range(month)
    chosen = one_consortium(session, caller_consortium_id, consortium)
    return MonthScope(chosen.id, chosen.name, chosen.timezone, month, start, end, now)


@dataclass
class SiteFigures:
    site: str
    site_tier: str
    studies: int = 0  # studies that arrived in the month
    turnaround: Group | None = None  # of their tasks: the turnaround CSV's line for the site
    reads: dict[str, int] = field(default_factory=dict)  # closed in the month: county, provincial, escalated
    county_closed: int = 0  # county tasks of the month's studies that are closed (signed or escalated)
    county_escalated: int = 0

    @property
    def escalation_rate(self) -> float | None:
        return self.county_escalated / self.county_closed if self.county_closed else None


@dataclass
class MonthlyFigures:
    scope: MonthScope
    studies: int
    tasks: int
    volume: dict[str, list[int]]  # modality → studies per day of ``scope.days``
    by_priority: list[Group]  # the turnaround figures per priority
    reading: dict[str, dict[str, float | None]]  # priority → n and p50/p90/p95 of queued → signed
    sla: dict[str, int]  # minutes per priority (every modality)
    sla_overrides: list[str]  # modality-specific entries, in words
    breaches: list[Breach]
    causes: list[tuple[str, int, int]]  # longest interval, breaches, of which still open
    sites: list[SiteFigures]
    workload: list[WorkloadLine]
    ai: list[ModelSite]

    @property
    def compliance(self) -> tuple[int, int]:
        """(met, judged) over every task of the month."""
        met = sum(g.met for g in self.by_priority)
        return met, met + sum(g.breached for g in self.by_priority)

    @property
    def escalation(self) -> tuple[int, int]:
        """(escalated, closed) county tasks of the month's studies."""
        return sum(s.county_escalated for s in self.sites), sum(s.county_closed for s in self.sites)


def monthly_figures(session: Session, scope: MonthScope, *, progress: Progress | None = None) -> MonthlyFigures:
    """Every figure of the report for ``scope``."""
    step = progress or (lambda _: None)
    zones, names = zone_lookup(session), name_lookup(session)
    step(STEPS[0])
    rows = rows_between(session, scope.consortium_id, scope.start, scope.end)
    step(STEPS[1])
    closed = rows_signed_between(session, scope.consortium_id, scope.start, scope.end, zones)
    step(STEPS[2])
    ai = ai_figures(session, scope.consortium_id, scope.start, scope.end, rows=rows)
    sla, overrides = sla_table(session, scope.consortium_id)
    step(STEPS[3])
    common: dict[str, Any] = {"now": scope.now, "zones": zones, "names": names}
    by_site = turnaround(rows, group_by=["site"], **common)
    by_priority = turnaround(rows, group_by=["priority"], **common)
    lines = workload(closed, start=scope.start, end=scope.end, zones=zones, names=names)
    late = breaches(rows, scope.now)
    causes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for breach in late:
        causes[breach.interval][0] += 1
        causes[breach.interval][1] += int(breach.open)
    sites, volume, reading = _one_pass(rows, scope, ZoneInfo(scope.timezone), names)
    for group in by_site:
        sites.setdefault(group.key["site"], SiteFigures(group.key["site"], "")).turnaround = group
    for line in lines:
        sites.setdefault(line.site, SiteFigures(line.site, line.site_tier)).site_tier = line.site_tier
    for site, reads in signed_per_site(lines).items():
        sites[site].reads = reads
    return MonthlyFigures(
        scope=scope,
        studies=sum(s.studies for s in sites.values()),
        tasks=len(rows),
        volume=volume,
        by_priority=by_priority,
        reading=reading,
        sla=sla,
        sla_overrides=overrides,
        breaches=late,
        causes=sorted(((k, n, o) for k, (n, o) in causes.items()), key=lambda c: (-c[1], c[0])),
        sites=[sites[name] for name in sorted(sites)],
        workload=lines,
        ai=ai,
    )


def _one_pass(
    rows: Sequence[Any], scope: MonthScope, zone: ZoneInfo, names: Callable[[str, Any], str]
) -> tuple[dict[str, SiteFigures], dict[str, list[int]], dict[str, dict[str, float | None]]]:
    """Per site: studies and escalation; studies per modality and day; queued → signed minutes
    per priority — in one pass over the month's rows."""
    sites: dict[str, SiteFigures] = {}
    day_index = {day: i for i, day in enumerate(scope.days)}
    volume: dict[str, list[int]] = {}
    seen: set[str] = set()
    minutes: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        site = names("site", row.site_id)
        of_site = sites.setdefault(site, SiteFigures(site, row.site_tier))
        if row.study_uid not in seen:  # an escalated study has two tasks: one study
            seen.add(row.study_uid)
            of_site.studies += 1
            day = (row.received_at or row.queued_at).astimezone(zone).date().isoformat()
            per_day = volume.setdefault(row.modality or "—", [0] * len(day_index))
            per_day[day_index[day]] += 1
        if row.tier == "county" and row.signed_at is not None:
            of_site.county_closed += 1
            of_site.county_escalated += int(row.escalated)
        if row.signed_at is not None and not row.escalated:
            minutes[row.priority].append((row.signed_at - row.queued_at).total_seconds() / 60.0)
    reading: dict[str, dict[str, float | None]] = {}
    for priority in ("stat", "urgent", "routine"):
        values = minutes.get(priority, [])
        figures_of: dict[str, float | None] = {"n": float(len(values))}
        for q in PERCENTILES:
            figures_of[f"p{q}"] = round(percentile(values, q), 2) if values else None
        reading[priority] = figures_of
    return sites, volume, reading
