"""What the workload, AI and monthly-report figures read from the index — each a handful of
set queries (never one per row), the change log folded into ``qa_turnaround`` first — and
which consortium a caller may ask about."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from ai_models.records import AiFeedback, AiFinding
from pacs.index.models import Change, Consortium, Site
from reading import events
from reading.errors import Invalid, NotFound, OutOfScope
from reading.models import Priority, SlaRule
from reading.qa.ai import FindingFact, ModelSite, PriorityChange, Raise, ai_performance, ai_prioritised
from reading.qa.models import QaTurnaround
from reading.qa.service import TurnaroundRow, name_lookup, rows_between, zone_lookup
from reading.qa.store import refresh
from reading.qa.workload import WorkloadLine, workload
from reading.worklist.sla import SlaEntry, sla_minutes

# A local date is at most 14 h from UTC: a day's margin on each side of a range lets SQL narrow
# the rows on the UTC column before the exact local-date test in Python.
_MARGIN = timedelta(days=1)
# A finding of a study whose site is unknown is dated in the consortiums' default zone.
_NO_SITE_ZONE = ZoneInfo("Asia/Shanghai")


def consortium_scope(session: Session, caller_consortium_id: int | None, name: str | None) -> int | None:
    """The consortium (id) a question is about: the named one, or the caller's own, or None
    (every consortium: an administrator bound to none). Raises ``OutOfScope`` when a caller
    bound to a consortium names another (whether it exists or not: existence is not his to
    learn) and ``NotFound`` when an unbound caller names an unknown one."""
    if name is None or name == "":
        return caller_consortium_id
    found = session.scalar(select(Consortium.id).where(Consortium.name == name))
    if caller_consortium_id is not None and found != caller_consortium_id:
        raise OutOfScope(f"you see your own consortium only, not {name!r}")
    if found is None:
        raise NotFound(f"no consortium {name!r}")
    return found


def one_consortium(session: Session, caller_consortium_id: int | None, name: str | None) -> Consortium:
    """The one consortium a monthly report is about (its name, time zone and SLA table): the
    named or the caller's own; the only one when there is a single consortium. Raises
    ``OutOfScope``/``NotFound`` as ``consortium_scope`` and ``Invalid`` when it is ambiguous."""
    chosen = consortium_scope(session, caller_consortium_id, name)
    if chosen is not None:
        return session.get_one(Consortium, chosen)
    known = list(session.scalars(select(Consortium).order_by(Consortium.name)))
    if len(known) == 1:
        return known[0]
    listed = ", ".join(c.name for c in known) or "none yet"
    raise Invalid(f"name the consortium of the report (known: {listed})")


def utc_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """UTC instants surely before local ``start`` and after local ``end`` in any time zone
    (``None``: unbounded)."""
    return (
        None if start is None else datetime.combine(start, time(), tzinfo=UTC) - _MARGIN,
        None if end is None else datetime.combine(end, time(), tzinfo=UTC) + _MARGIN,
    )


def local_date_test(
    zones: Callable[[int], ZoneInfo], start: date | None, end: date | None
) -> Callable[[int, datetime | None], bool]:
    """``test(consortium_id, at)``: does ``at`` fall on a local date from ``start`` to before
    ``end`` (either may be None: unbounded)?"""

    def test(consortium_id: int, at: datetime | None) -> bool:
        if at is None:
            return False
        local = at.astimezone(zones(consortium_id)).date()
        return (start is None or local >= start) and (end is None or local < end)

    return test


def rows_signed_between(
    session: Session, consortium_id: int | None, start: date, end: date, zones: Callable[[int], ZoneInfo]
) -> list[Any]:
    """The tasks closed (signed or escalated) on a local date from ``start`` up to ``end``:
    rows with the ``qa_turnaround`` attributes ``reading.qa.workload`` reads (only those: a
    month of 100,000 whole rows costs seconds of datetime conversion for nothing)."""
    refresh(session)
    low, high = utc_bounds(start, end)
    t = QaTurnaround
    statement = select(
        t.task_id, t.consortium_id, t.site_id, t.site_tier, t.modality, t.tier, t.priority, t.escalated, t.signed_at
    ).where(t.signed_at.is_not(None))
    if low is not None:
        statement = statement.where(t.signed_at >= low)
    if high is not None:
        statement = statement.where(t.signed_at < high)
    if consortium_id is not None:
        statement = statement.where(t.consortium_id == consortium_id)
    within = local_date_test(zones, start, end)
    return [row for row in session.execute(statement.order_by(t.task_id)) if within(row.consortium_id, row.signed_at)]


def findings_around(
    session: Session, consortium_id: int | None, start: date | None, end: date | None
) -> tuple[list[FindingFact], dict[int, int]]:
    """The AI findings made from a day before local ``start`` to a day after ``end`` (the
    caller keeps the period's; the rest may explain a raise) and each one's consortium."""
    low, high = utc_bounds(start, end)
    statement = (
        select(
            AiFinding.id,
            AiFinding.study_uid,
            AiFinding.site_id,
            AiFinding.model,
            AiFinding.version,
            AiFinding.positive,
            AiFinding.suggested_triage,
            AiFinding.created_at,
            Site.consortium_id,
        )
        .outerjoin(Site, Site.id == AiFinding.site_id)
        .order_by(AiFinding.id)
    )
    if low is not None:
        statement = statement.where(AiFinding.created_at >= low)
    if high is not None:
        statement = statement.where(AiFinding.created_at < high)
    if consortium_id is not None:
        statement = statement.where(Site.consortium_id == consortium_id)
    found: list[FindingFact] = []
    consortium_of: dict[int, int] = {}
    for row in session.execute(statement):
        found.append(FindingFact(*row[:8]))
        if row[8] is not None:
            consortium_of[row[0]] = row[8]
    return found, consortium_of


def opinions_of(session: Session, start: date | None, end: date | None) -> dict[int, tuple[int, int]]:
    """Finding id → (agreed, opinions) for the findings ``findings_around`` the same dates."""
    low, high = utc_bounds(start, end)
    statement = (
        select(AiFeedback.finding_id, func.sum(case((AiFeedback.agree, 1), else_=0)), func.count())
        .join(AiFinding, AiFinding.id == AiFeedback.finding_id)
        .group_by(AiFeedback.finding_id)
    )
    if low is not None:
        statement = statement.where(AiFinding.created_at >= low)
    if high is not None:
        statement = statement.where(AiFinding.created_at < high)
    return {int(finding): (int(agreed or 0), int(total)) for finding, agreed, total in session.execute(statement)}


def raises_of(session: Session, rows: Sequence[TurnaroundRow]) -> dict[int, Raise]:
    """The AI-prioritised tasks among ``rows`` (``reading.qa.ai.ai_prioritised``), from the
    changes that can show a raise — not one query per task, and not every task's queueing
    either (a month's 100,000 JSON payloads cost seconds): the ``task.route_updated`` changes
    since the first of them was queued, the queueings of their studies, and the other
    queueings in the span whose reason names the AI or that come from an escalation."""
    if not rows:
        return {}
    first = min(row.queued_at for row in rows)
    last = max(row.queued_at for row in rows)
    columns = (Change.seq, Change.kind, Change.actor, Change.payload, Change.study_uid)
    updates = list(
        session.execute(select(*columns).where(Change.kind == events.TASK_ROUTE_UPDATED, Change.at >= first))
    )
    queued = select(*columns).where(Change.kind == events.TASK_QUEUED, Change.at >= first, Change.at <= last)
    telling = queued.where(
        or_(
            Change.payload["reason"].as_string().like("%from the AI pre-screen%"),
            Change.payload["escalated_from"].as_integer().is_not(None),
        )
    )
    found = {row.seq: row for row in session.execute(telling)}
    updated = sorted({row.study_uid for row in updates if row.study_uid is not None})
    for start in range(0, len(updated), 500):
        found.update(
            (row.seq, row) for row in session.execute(queued.where(Change.study_uid.in_(updated[start : start + 500])))
        )
    found.update((row.seq, row) for row in updates)
    changes = [PriorityChange(row.kind, row.actor, row.payload or {}) for _, row in sorted(found.items())]
    wanted = {row.task_id for row in rows}
    return {task_id: lift for task_id, lift in ai_prioritised(changes).items() if task_id in wanted}


def sla_table(session: Session, consortium_id: int) -> tuple[dict[str, int], list[str]]:
    """Minutes allowed per priority (the consortium's entry for every modality, else the
    default) and the modality-specific entries in words ("DX routine 120 min")."""
    rules = list(session.scalars(select(SlaRule).where(SlaRule.consortium_id == consortium_id)))
    entries = [SlaEntry(Priority(r.priority), r.modality, r.minutes) for r in rules]
    general = {p.value: sla_minutes(entries, p, None) for p in Priority}
    overrides = sorted(f"{r.modality} {r.priority} {r.minutes} min" for r in rules if r.modality)
    return general, overrides


def workload_lines(session: Session, consortium_id: int | None, start: date, end: date) -> list[WorkloadLine]:
    """Reads per site, modality and tier closed in a local date range (``reading.qa.workload``)."""
    zones = zone_lookup(session)
    closed = rows_signed_between(session, consortium_id, start, end, zones)
    return workload(closed, start=start, end=end, zones=zones, names=name_lookup(session))


def ai_figures(
    session: Session,
    consortium_id: int | None,
    start: date | None,
    end: date | None,
    *,
    rows: Sequence[TurnaroundRow] | None = None,
) -> list[ModelSite]:
    """AI performance per model version and site (``reading.qa.ai``): findings made, and tasks
    whose study arrived, on a local date from ``start`` up to ``end``. ``rows``: the period's
    turnaround rows when the caller has them already (the monthly report)."""
    zones = zone_lookup(session)
    if rows is None:
        rows = rows_between(session, consortium_id, start, end)
    findings, consortium_of = findings_around(session, consortium_id, start, end)
    within = local_date_test(zones, start, end)

    def counted(finding: FindingFact) -> bool:
        owner = consortium_of.get(finding.finding_id)
        if owner is not None:
            return within(owner, finding.created_at)
        local = finding.created_at.astimezone(_NO_SITE_ZONE).date()
        return (start is None or local >= start) and (end is None or local < end)

    return ai_performance(
        findings,
        opinions_of(session, start, end),
        rows,
        raises_of(session, rows),
        counted=counted,
        names=name_lookup(session),
    )
