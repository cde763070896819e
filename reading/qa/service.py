"""What QA staff ask, within their scope: the turnaround rows of a date range (the log folded
in first), the figures and breaches over them, and their CSV form."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from pacs.index.models import Consortium, Site, User, UserGrant
from reading.errors import Invalid
from reading.models import Reader, RosterWindow
from reading.qa.figures import (
    DIMENSION_COLUMNS,
    MEASURED,
    PERCENTILES,
    Breach,
    FigureError,
    Group,
    Period,
    breaches,
    check_groups,
    turnaround_measured,
)
from reading.qa.measure import dimension_column, interval_columns, sla_column
from reading.qa.models import QaTurnaround
from reading.qa.staffing import RosteredReader, Staffing, StaffingLookup
from reading.qa.store import refresh
from reading.qa.timeline import INTERVALS, SPANS
from reading.worklist.readers import window_of
from reading.worklist.roster import Window

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"  # Consortium.timezone's default
TurnaroundRow = Row[*tuple[Any, ...]]  # a row with the attributes of qa_turnaround
AnySelect = Select[*tuple[Any, ...]]


# What the figures and the breach list read of a row (figures.py, timeline.interval_minutes):
# plain rows, not ORM objects — a province's year is 100,000 of them (bench/qa.py).
_COLUMNS: Final = (
    QaTurnaround.task_id,
    QaTurnaround.study_uid,
    QaTurnaround.consortium_id,
    QaTurnaround.site_id,
    QaTurnaround.site_tier,
    QaTurnaround.tier,
    QaTurnaround.priority,
    QaTurnaround.modality,
    QaTurnaround.body_part,
    QaTurnaround.reader_id,
    QaTurnaround.escalated,
    QaTurnaround.received_at,
    QaTurnaround.stable_at,
    QaTurnaround.ai_at,
    QaTurnaround.queued_at,
    QaTurnaround.claimed_at,
    QaTurnaround.preliminary_at,
    QaTurnaround.signed_at,
    QaTurnaround.delivered_at,
    QaTurnaround.deadline_at,
    QaTurnaround.arrived_at,
)


def rows_between(
    session: Session,
    consortium_id: int | None,
    start: date | None,
    end: date | None,
    *,
    breached_at: datetime | None = None,
) -> Sequence[TurnaroundRow]:
    """The tasks whose study arrived from ``start`` up to (not including) ``end``, local dates
    of the consortium (all consortiums when ``consortium_id`` is None, each in its own zone),
    as rows with the attributes of ``qa_turnaround``. ``breached_at``: only the tasks past
    their deadline at that moment (``figures.sla_state`` in SQL)."""
    refresh(session)
    statement = _scoped(session, select(*_COLUMNS), consortium_id, start, end)
    if breached_at is not None:
        statement = statement.where(
            QaTurnaround.escalated.is_(false()),
            or_(
                and_(QaTurnaround.signed_at.is_not(None), QaTurnaround.signed_at > QaTurnaround.deadline_at),
                and_(QaTurnaround.signed_at.is_(None), QaTurnaround.deadline_at < breached_at),
            ),
        )
    return session.execute(statement.order_by(QaTurnaround.task_id)).all()


def measured_between(
    session: Session,
    consortium_id: int | None,
    start: date | None,
    end: date | None,
    *,
    group_by: Sequence[str],
    now: datetime,
) -> tuple[list[str], Sequence[TurnaroundRow]]:
    """The tasks of the range as the figures need them — the columns grouped by, the SLA state
    at ``now`` and every interval's minutes, measured by the database (``measure.py``) — and
    the names of the columns. Raises ``FigureError`` for an unknown grouping."""
    check_groups(group_by)
    refresh(session)
    wanted = list(dict.fromkeys(name for dimension in group_by for name in DIMENSION_COLUMNS[dimension]))
    dimensions = [dimension_column(name) for name in wanted]
    statement = select(*dimensions, sla_column(now), *interval_columns())
    # Core, not the ORM's row loading: 0.3 s less per 100,000 rows (bench/qa.py).
    rows = session.connection().execute(_scoped(session, statement, consortium_id, start, end)).all()
    return [*wanted, "sla", *MEASURED], rows


def _scoped(
    session: Session, statement: AnySelect, consortium_id: int | None, start: date | None, end: date | None
) -> AnySelect:
    if consortium_id is not None:
        statement = statement.where(QaTurnaround.consortium_id == consortium_id)
    if start is not None or end is not None:
        statement = statement.where(_arrived_between(session, consortium_id, start, end))
    return statement


def _arrived_between(
    session: Session, consortium_id: int | None, start: date | None, end: date | None
) -> ColumnElement[bool]:
    """Local dates as UTC bounds on ``arrived_at``, one pair per time zone: a consortium's day
    starts at its own midnight (index ``ix_qa_turnaround_arrived``)."""
    statement = select(Consortium.id, Consortium.timezone)
    if consortium_id is not None:
        statement = statement.where(Consortium.id == consortium_id)
    by_zone: dict[str, list[int]] = defaultdict(list)
    for cid, timezone in session.execute(statement):
        by_zone[timezone or DEFAULT_TIMEZONE].append(cid)
    ranges = []
    for timezone, ids in by_zone.items():
        zone = ZoneInfo(timezone)
        bounds = []
        if start is not None:
            bounds.append(QaTurnaround.arrived_at >= datetime.combine(start, time(), tzinfo=zone))
        if end is not None:
            bounds.append(QaTurnaround.arrived_at < datetime.combine(end, time(), tzinfo=zone))
        # One zone for all (the usual case): no list of consortiums to match.
        scope = [QaTurnaround.consortium_id.in_(ids)] if len(by_zone) > 1 else []
        ranges.append(and_(*scope, *bounds))
    return or_(*ranges) if ranges else false()


def zone_lookup(session: Session) -> Any:
    zones = {cid: ZoneInfo(tz) for cid, tz in session.execute(select(Consortium.id, Consortium.timezone)).all()}

    @cache
    def zone(consortium_id: int) -> ZoneInfo:
        return zones.get(consortium_id, ZoneInfo(DEFAULT_TIMEZONE))

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
    try:
        columns, rows = measured_between(session, consortium_id, start, end, group_by=group_by, now=now)
        return turnaround_measured(
            rows,
            columns=columns,
            group_by=group_by,
            period=cast(Period, period),
            zones=zone_lookup(session),
            names=name_lookup(session),
        )
    except FigureError as exc:
        raise Invalid(str(exc)) from None


def breach_list(
    session: Session, consortium_id: int | None, *, start: date | None, end: date | None, now: datetime
) -> list[Breach]:
    """The breaches of the range; a long wait in the queue says who was on duty (staffing.py)."""
    return breaches(
        rows_between(session, consortium_id, start, end, breached_at=now), now, staffing=staffing_lookup(session)
    )


def staffing_lookup(session: Session) -> StaffingLookup:
    """Every active reader with his credentials, the sites he reads for and his roster."""
    zones = dict(session.execute(select(Consortium.id, Consortium.timezone)).all())
    windows: dict[int, list[Window]] = defaultdict(list)
    for row in session.scalars(select(RosterWindow)):
        windows[row.reader_id].append(window_of(row))
    sites: dict[int, set[int]] = defaultdict(set)  # user → sites, granted directly or by consortium
    direct = select(UserGrant.user_id, UserGrant.site_id).where(UserGrant.site_id.is_not(None))
    through = select(UserGrant.user_id, Site.id).join(Site, Site.consortium_id == UserGrant.consortium_id)
    for user_id, site_id in session.execute(direct.union_all(through)):
        if site_id is not None:
            sites[user_id].add(site_id)
    readers = session.execute(
        select(Reader.id, Reader.user_id, Reader.consortium_id, Reader.tier, Reader.modalities, Reader.body_parts)
        .join(User, User.id == Reader.user_id)
        .where(Reader.active.is_(True), User.active.is_(True))
    )
    return StaffingLookup(
        [
            RosteredReader(
                reader_id=reader_id,
                tier=tier,
                modalities=frozenset(modalities or ()),
                body_parts=frozenset(body_parts or ()),
                site_ids=frozenset(sites[user_id]),
                windows=tuple(windows[reader_id]),
                timezone=zones.get(home) or DEFAULT_TIMEZONE,
            )
            for reader_id, user_id, home, tier, modalities, body_parts in readers
        ]
    )


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
            "staffing",
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
                b.staffing.kind if b.staffing else "",
            ]
        )
    return out.getvalue()


def staffing_json(staffing: Staffing | None) -> dict[str, Any] | None:
    if staffing is None:
        return None
    return {
        "kind": staffing.kind,
        "tier": staffing.tier,
        "readers_credentialed": staffing.credentialed,
        "most_on_duty": staffing.most_on_duty,
        "minutes_covered": staffing.covered_minutes,
        "minutes_waited": staffing.wait_minutes,
    }


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
