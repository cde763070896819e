"""Each interval's minutes and the SLA state of a ``qa_turnaround`` row as SQL expressions, so
the database measures a province's year of tasks and Python only sorts numbers: fetching
100,000 rows of ten timestamps and measuring them in Python took 2.2 s on PostgreSQL
(``bench/qa.py``, docs/performance.md); fetching the minutes takes a fraction of that.

The expressions say in SQL what ``timeline.interval_minutes`` and ``figures.sla_state`` say in
Python — an interval runs from the last milestone reached before it (COALESCE down the chain)
— and the tests hold them to the same answers on every task of a month (test_qa_month.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from reading.qa.models import QaTurnaround as T
from reading.qa.timeline import INTERVALS


class minutes_between(FunctionElement[float]):
    """``end - start`` in minutes as a float; NULL when either is NULL."""

    type = Float()
    inherit_cache = True


@compiles(minutes_between, "postgresql")
def _minutes_postgresql(element: minutes_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION) / 60.0)"


@compiles(minutes_between, "sqlite")
def _minutes_sqlite(element: minutes_between, compiler: SQLCompiler, **kw: Any) -> str:
    # julianday() keeps milliseconds and returns a double of days: its difference, rounded to
    # whole milliseconds, is exact (rounding minutes instead left 2.000001 for 2 min).
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(ROUND((julianday({end}) - julianday({start})) * 86400000.0) / 60000.0)"


class epoch_seconds(FunctionElement[float]):
    """A timestamp as seconds since 1970-01-01 UTC, a float (no datetime built per row)."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    (moment,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM {moment}) AS DOUBLE PRECISION)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # Whole milliseconds, as above: a study at local midnight must not fall on the day before.
    (moment,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"(ROUND((julianday({moment}) - 2440587.5) * 86400000.0) / 1000.0)"


def dimension_column(name: str) -> ColumnElement[Any]:
    """A column of ``figures.DIMENSION_COLUMNS`` by name."""
    if name == "arrived_epoch":
        return epoch_seconds(T.arrived_at).label(name)
    column: ColumnElement[Any] = getattr(T, name)
    return column


def interval_columns() -> list[ColumnElement[float]]:
    """The minutes of ``INTERVALS`` then ``SPANS``, labelled as ``figures.MEASURED`` reads them."""
    reached = {
        "stable": T.received_at,
        "ai": func.coalesce(T.stable_at, T.received_at),
        "queued": func.coalesce(T.ai_at, T.stable_at, T.received_at),
        "claimed": T.queued_at,
        "preliminary": func.coalesce(T.claimed_at, T.queued_at),
        "signed": func.coalesce(T.preliminary_at, T.claimed_at, T.queued_at),
        "delivered": func.coalesce(T.signed_at, T.preliminary_at, T.claimed_at, T.queued_at),
    }
    ends = {
        "stable": T.stable_at,
        "ai": T.ai_at,
        "queued": T.queued_at,
        "claimed": T.claimed_at,
        "preliminary": T.preliminary_at,
        "signed": T.signed_at,
        "delivered": T.delivered_at,
    }
    columns: list[ColumnElement[float]] = [
        minutes_between(reached[name], ends[name]).label(f"{name}_minutes") for name in INTERVALS
    ]
    report = case((T.escalated.is_(True), None), else_=minutes_between(T.received_at, T.signed_at))
    columns.append(report.label("report_minutes"))
    columns.append(minutes_between(T.received_at, T.delivered_at).label("site_minutes"))
    return columns


def sla_column(now: datetime) -> ColumnElement[str | None]:
    """``met``, ``breached`` or NULL, as ``figures.sla_state`` judges at ``now``."""
    return case(
        (T.escalated.is_(True), None),
        (T.signed_at.is_not(None), case((T.signed_at <= T.deadline_at, "met"), else_="breached")),
        (and_(T.signed_at.is_(None), T.deadline_at < now), "breached"),
        else_=None,
    ).label("sla")
