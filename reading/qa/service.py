"""What QA staff ask, within their scope: the turnaround rows of a date range (the log folded
in first), the figures and breaches over them, and their CSV form."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.index.models import Consortium, Site, User
from reading.errors import Invalid
from reading.models import Reader
from reading.qa.figures import PERCENTILES, Breach, FigureError, Group, Period, breaches, turnaround
from reading.qa.models import QaTurnaround
from reading.qa.store import refresh
from reading.qa.timeline import INTERVALS, SPANS


def rows_between(
    session: Session, consortium_id: int | None, start: date | None, end: date | None
) -> list[QaTurnaround]:
    """The tasks whose study arrived from ``start`` up to (not including) ``end``, local dates
    of the consortium (all consortiums when ``consortium_id`` is None, each in its own zone)."""
    refresh(session)
    statement = select(QaTurnaround)
    if consortium_id is not None:
        statement = statement.where(QaTurnaround.consortium_id == consortium_id)
    # Narrow in SQL with a day's margin (no zone is 24 h from UTC); the local test below is exact.
    arrived = func.coalesce(QaTurnaround.received_at, QaTurnaround.queued_at)
    if start is not None:
        statement = statement.where(arrived >= datetime.combine(start, time(), tzinfo=UTC) - timedelta(days=1))
    if end is not None:
        statement = statement.where(arrived < datetime.combine(end, time(), tzinfo=UTC) + timedelta(days=1))
    rows = list(session.scalars(statement.order_by(QaTurnaround.task_id)))
    if start is None and end is None:
        return rows
    zones = zone_lookup(session)
    kept = []
    for row in rows:
        local = (row.received_at or row.queued_at).astimezone(zones(row.consortium_id)).date()
        if (start is None or local >= start) and (end is None or local < end):
            kept.append(row)
    return kept


def zone_lookup(session: Session) -> Any:
    zones = {cid: ZoneInfo(tz) for cid, tz in session.execute(select(Consortium.id, Consortium.timezone)).all()}

    @cache
    def zone(consortium_id: int) -> ZoneInfo:
        return zones.get(consortium_id, ZoneInfo("Asia/Shanghai"))

    return zone


def name_lookup(session: Session) -> Any:
    names = {
        "consortium": dict(session.execute(select(Consortium.id, Consortium.name)).all()),
        "site": dict(session.execute(select(Site.id, Site.name)).all()),
        "reader": dict(
            session.execute(
                select(Reader.id, func.coalesce(User.display_name, User.username)).join(User, User.id == Reader.user_id)
            ).all()
        ),
    }

    def name(dimension: str, value: Any) -> str:
        return str(names.get(dimension, {}).get(value) or value)

    return name


def figures(
    session: Session,
    consortium_id: int | None,
    *,
    group_by: Sequence[str],
    period: str,
    start: date | None,
    end: date | None,
    now: datetime,
) -> list[Group]:
    """Raises ``Invalid`` for an unknown grouping or period."""
    if period not in ("day", "week", "month"):
        raise Invalid(f"period must be day, week or month, not {period!r}")
    rows = rows_between(session, consortium_id, start, end)
    try:
        return turnaround(
            rows,
            group_by=group_by,
            now=now,
            period=cast(Period, period),
            zones=zone_lookup(session),
            names=name_lookup(session),
        )
    except FigureError as exc:
        raise Invalid(str(exc)) from None


def breach_list(
    session: Session, consortium_id: int | None, *, start: date | None, end: date | None, now: datetime
) -> list[Breach]:
    return breaches(rows_between(session, consortium_id, start, end), now)


def figures_csv(groups: Sequence[Group], group_by: Sequence[str]) -> str:
    """One line per group: its key, count, SLA, then n and percentiles of each interval."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = [f"{name}_{figure}" for name in (*INTERVALS, *SPANS) for figure in ("n", *(f"p{q}" for q in PERCENTILES))]
    writer.writerow([*group_by, "count", "sla_met", "sla_breached", "sla_compliance", *columns])
    for group in groups:
        data = group.as_json()
        cells = [
            data["minutes"][name][figure]
            for name in (*INTERVALS, *SPANS)
            for figure in ("n", *(f"p{q}" for q in PERCENTILES))
        ]
        compliance = group.compliance
        writer.writerow(
            [
                *(group.key[g] for g in group_by),
                group.count,
                group.met,
                group.breached,
                "" if compliance is None else f"{compliance:.4f}",
                *("" if c is None else c for c in cells),
            ]
        )
    return out.getvalue()


def breaches_csv(found: Sequence[Breach], site_names: Any) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "task_id",
            "study_uid",
            "site",
            "tier",
            "priority",
            "deadline_at",
            "late_minutes",
            "open",
            "interval",
            "interval_minutes",
            "cause",
        ]
    )
    for b in found:
        writer.writerow(
            [
                b.task_id,
                b.study_uid,
                site_names("site", b.site_id),
                b.tier,
                b.priority,
                b.deadline_at.isoformat(),
                b.late_minutes,
                b.open,
                b.interval,
                b.interval_minutes,
                b.cause,
            ]
        )
    return out.getvalue()


def parse_day(value: str | None, what: str) -> date | None:
    """``2026-10-01`` → a date; raises ``Invalid`` naming the parameter otherwise."""
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{what} must be a date like 2026-10-01, not {value!r}") from None


def month_range(month: str) -> tuple[date, date]:
    """``2026-10`` → (2026-10-01, 2026-11-01); raises ``Invalid`` otherwise."""
    try:
        first = datetime.combine(date.fromisoformat(f"{month}-01"), time())
    except ValueError:
        raise Invalid(f"month must look like 2026-10, not {month!r}") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first.date(), following.date()
