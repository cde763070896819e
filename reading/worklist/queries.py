"""The worklist as a reader sees it: the tasks he may read (tier, the sites he reads for,
credentials, groups), stat first then nearest deadline, with filters and counts per state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, text, union_all
from sqlalchemy.orm import Session

from pacs.index.models import Patient, Site, Study
from reading.models import Reader, ReadingTask, TaskState
from reading.worklist.readers import facts_of
from reading.worklist.transitions import OPEN_STATES

COUNT_CAP = 100
# The partial index's predicate, as literal SQL: with bound parameters neither SQLite nor a
# generic PostgreSQL plan can prove the query implies it, and the index would go unused.
OPEN_PREDICATE: ColumnElement[bool] = text("reading_task.state IN ('claimed', 'preliminary', 'queued')")  # type: ignore[assignment]


@dataclass(frozen=True)
class Filters:
    states: tuple[TaskState, ...] = tuple(sorted(OPEN_STATES))
    site_id: int | None = None
    modality: str | None = None
    priority: str | None = None
    day: date | None = None  # tasks created on this day, in the consortium's time zone
    timezone: str = "Asia/Shanghai"
    mine: bool = False  # only the reader's own claims
    extra: dict[str, Any] = field(default_factory=dict)


def _scope(
    session: Session, reader: Reader, *, now: datetime, site_ids: frozenset[int] | None = None
) -> list[ColumnElement[bool]]:
    facts = facts_of(session, reader, now=now, site_ids=site_ids, with_duty=False)
    conditions: list[ColumnElement[bool]] = [
        ReadingTask.tier == reader.tier,
        ReadingTask.site_id.in_(sorted(facts.site_ids)),
        ReadingTask.modality.in_(sorted(facts.modalities)),
        or_(ReadingTask.group_id.is_(None), ReadingTask.group_id.in_(sorted(facts.group_ids))),
    ]
    if facts.body_parts:
        conditions.append(or_(ReadingTask.body_part.is_(None), ReadingTask.body_part.in_(sorted(facts.body_parts))))
    return conditions


def _filters(filters: Filters, reader: Reader) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.site_id is not None:
        conditions.append(ReadingTask.site_id == filters.site_id)
    if filters.modality:
        conditions.append(ReadingTask.modality == filters.modality)
    if filters.priority:
        conditions.append(ReadingTask.priority == filters.priority)
    if filters.mine:
        conditions.append(ReadingTask.claimed_by == reader.id)
    if filters.day is not None:
        zone = ZoneInfo(filters.timezone)
        start = datetime.combine(filters.day, time(0), zone)
        conditions.append(and_(ReadingTask.created_at >= start, ReadingTask.created_at < start + timedelta(days=1)))
    return conditions


def worklist_statement(
    session: Session, reader: Reader, filters: Filters, *, now: datetime, scope: list[ColumnElement[bool]] | None = None
) -> Select[Any]:
    """Tasks in ``filters.states`` the reader may read, in worklist order: walked in the order
    of the partial index on open tasks (tier, priority, deadline) until a page is found."""
    # Open states only: the partial index's own predicate, so both databases can use it.
    open_only = [OPEN_PREDICATE] if set(filters.states) <= OPEN_STATES else []
    return (
        select(ReadingTask)
        .where(*open_only, ReadingTask.state.in_([s.value for s in filters.states]))
        .where(*(scope if scope is not None else _scope(session, reader, now=now)), *_filters(filters, reader))
        .order_by(ReadingTask.tier, ReadingTask.priority_rank, ReadingTask.deadline_at, ReadingTask.id)
    )


@dataclass(frozen=True)
class WorklistRow:
    task: ReadingTask
    patient_name: str | None
    patient_id: str | None
    accession_number: str | None
    study_description: str | None
    site_name: str
    num_instances: int
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_date: str | None = None
    received_at: datetime | None = None


def worklist(
    session: Session,
    reader: Reader,
    filters: Filters,
    *,
    now: datetime,
    limit: int = 50,
    offset: int = 0,
    site_ids: frozenset[int] | None = None,
) -> tuple[list[WorklistRow], dict[str, int]]:
    """One page of the reader's worklist and the number of his tasks in each state, counted up
    to ``COUNT_CAP`` (a worklist shows "100+", not an exact count that costs a scan of every
    open task on each refresh)."""
    scope = _scope(session, reader, now=now, site_ids=site_ids)
    page = worklist_statement(session, reader, filters, now=now, scope=scope).limit(limit).offset(offset).subquery()
    rows = session.execute(
        select(
            ReadingTask,
            Study.patient_name,
            Study.patient_id,
            Study.accession_number,
            Study.study_description,
            Site.name,
            Study.num_instances,
            Patient.birth_date,
            Patient.sex,
            Study.study_date,
            Study.first_received_at,
        )
        .join(page, page.c.id == ReadingTask.id)
        .join(Study, Study.id == ReadingTask.study_pk)
        .join(Patient, Patient.id == Study.patient_pk)
        .join(Site, Site.id == ReadingTask.site_id)
        .order_by(ReadingTask.tier, ReadingTask.priority_rank, ReadingTask.deadline_at, ReadingTask.id)
    ).all()
    # One round trip for the three capped counts (each an index range of one state).
    per_state = [
        select(literal(state.value).label("state"), func.count().label("n")).select_from(
            select(ReadingTask.id)
            .where(ReadingTask.state == state.value, *scope, *_filters(filters, reader))
            .limit(COUNT_CAP)
            .subquery()
        )
        for state in sorted(OPEN_STATES)
    ]
    counts = {str(state): int(n) for state, n in session.execute(union_all(*per_state))}
    return [WorklistRow(*row) for row in rows], counts
