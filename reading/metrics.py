"""Reading's index figures for ``/metrics`` (pacs/metrics.py collects them at scrape time): open
tasks per tier, priority and state, the open ones past their deadline, SLA breaches flagged so
far, and report deliveries by state with their failed attempts."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.index.models import Change
from pacs.index.types import utcnow
from reading import events
from reading.models import Delivery, DeliveryAttempt, ReadingTask
from reading.worklist.transitions import OPEN_STATES


def reading_figures(session: Session) -> Iterable[Metric]:
    now = utcnow()
    open_tasks = GaugeMetricFamily(
        "yunying_tasks_open",
        "Reading tasks not signed yet, per tier, priority and state",
        labels=["tier", "priority", "state"],
    )
    late = GaugeMetricFamily(
        "yunying_tasks_past_deadline",
        "Open reading tasks past their SLA deadline, per tier and priority",
        labels=["tier", "priority"],
    )
    late_counts: dict[tuple[str, str], int] = {}
    for tier, priority, state, count, overdue in session.execute(
        select(
            ReadingTask.tier,
            ReadingTask.priority,
            ReadingTask.state,
            func.count(),
            func.count().filter(ReadingTask.deadline_at < now),
        )
        .where(ReadingTask.state.in_(sorted(OPEN_STATES)))
        .group_by(ReadingTask.tier, ReadingTask.priority, ReadingTask.state)
    ):
        open_tasks.add_metric([tier, priority, state], count)
        late_counts[(tier, priority)] = late_counts.get((tier, priority), 0) + overdue
    for (tier, priority), count in sorted(late_counts.items()):
        late.add_metric([tier, priority], count)
    yield open_tasks
    yield late
    breaches = session.scalar(select(func.count()).where(Change.kind == events.TASK_SLA_BREACHED)) or 0
    yield CounterMetricFamily("yunying_sla_breaches", "Reading tasks flagged past their deadline, ever", value=breaches)
    deliveries = GaugeMetricFamily("yunying_deliveries", "Report deliveries per state", labels=["state"])
    for state, count in session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)):
        deliveries.add_metric([state], count)
    yield deliveries
    failed = session.scalar(select(func.count()).where(DeliveryAttempt.outcome == "failed")) or 0
    yield CounterMetricFamily(
        "yunying_delivery_failures",
        "Delivery attempts that failed (the site unreachable or refusing), ever",
        value=failed,
    )
