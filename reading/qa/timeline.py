"""A reading task's milestones from the change log — plain Python, no database.

For each task (``task.queued`` names it) of a study: when the study's first image arrived
(``study.received``), when it last turned stable and when AI last finished before the task was
queued (a study that re-opened counts from its last stability), when the task was first
claimed, made preliminary and signed — or escalated, which closes a county task — and when the
report of the task first reached the site (``delivery.delivered`` of one of its reports).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pacs import events as pacs_events
from reading import events

AI_FINISHED: Final = frozenset({"ai.done", "ai.failed", "ai.skipped"})

# The intervals QA reports, between consecutive milestones (the later one's name), and end to
# end. A missing milestone (no AI ran, no preliminary report) is skipped: the interval after it
# starts from the last one reached.
INTERVALS: Final = ("stable", "ai", "queued", "claimed", "preliminary", "signed", "delivered")
SPANS: Final = ("report", "site")  # first image → signed report; first image → at the site


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    at: datetime
    actor: str | None
    payload: dict[str, Any]


@dataclass
class Milestones:
    task_id: int
    study_uid: str
    queued_at: datetime
    tier: str | None = None
    received_at: datetime | None = None
    stable_at: datetime | None = None
    ai_at: datetime | None = None
    claimed_at: datetime | None = None
    preliminary_at: datetime | None = None
    signed_at: datetime | None = None  # signed, or escalated (the task is closed either way)
    escalated: bool = False
    reader_id: int | None = None
    delivered_at: datetime | None = None
    report_ids: set[int] = field(default_factory=set)


def milestones(study_uid: str, log: Iterable[Event]) -> list[Milestones]:
    """The milestones of every task of one study, from its events in ``seq`` order."""
    received: datetime | None = None
    stables: list[datetime] = []
    ai: list[datetime] = []
    tasks: dict[int, Milestones] = {}
    report_task: dict[int, int] = {}
    for event in log:
        kind, at, payload = event.kind, event.at, event.payload
        task = tasks.get(int(payload["task_id"])) if "task_id" in payload else None
        if kind == pacs_events.STUDY_RECEIVED and received is None:
            received = at
        elif kind == pacs_events.STUDY_STABLE:
            stables.append(at)
        elif kind in AI_FINISHED:
            ai.append(at)
        elif kind == events.TASK_QUEUED:
            task_id = int(payload["task_id"])
            tasks[task_id] = Milestones(
                task_id,
                study_uid,
                at,
                tier=payload.get("tier"),
                received_at=received,
                stable_at=max((t for t in stables if t <= at), default=None),
                ai_at=max((t for t in ai if t <= at), default=None),
            )
        elif task is None:
            if kind == events.DELIVERY_DELIVERED and payload.get("report_id") in report_task:
                owner = tasks[report_task[payload["report_id"]]]
                owner.delivered_at = owner.delivered_at or at
            continue
        elif kind == events.TASK_CLAIMED and task.claimed_at is None:
            task.claimed_at = at
        elif kind == events.TASK_PRELIMINARY and task.preliminary_at is None:
            task.preliminary_at = at
        elif kind in (events.TASK_SIGNED, events.TASK_ESCALATED) and task.signed_at is None:
            task.signed_at = at
            task.escalated = kind == events.TASK_ESCALATED
            task.reader_id = task.reader_id or _reader(event.actor)
        elif kind == events.REPORT_SIGNED and "report_id" in payload:
            report_task[int(payload["report_id"])] = task.task_id
            task.report_ids.add(int(payload["report_id"]))
            task.reader_id = _reader(event.actor) or task.reader_id
    # The AI of a task is the one between its stability and its queueing.
    for task in tasks.values():
        if task.ai_at is not None and task.stable_at is not None and task.ai_at < task.stable_at:
            task.ai_at = None
    return list(tasks.values())


def _reader(actor: str | None) -> int | None:
    """``reader:12`` → 12 (the actor reports and reading write); anything else → None."""
    if actor and actor.startswith("reader:") and actor[7:].isdigit():
        return int(actor[7:])
    return None


def interval_minutes(row: Any) -> dict[str, float | None]:
    """Minutes of each interval (``INTERVALS``) and span (``SPANS``) of a row with the
    milestone attributes (``Milestones`` or a ``qa_turnaround`` row); ``None`` where the later
    milestone was not reached."""
    order = [
        ("received", row.received_at),
        ("stable", row.stable_at),
        ("ai", row.ai_at),
        ("queued", row.queued_at),
        ("claimed", row.claimed_at),
        ("preliminary", row.preliminary_at),
        ("signed", row.signed_at),
        ("delivered", row.delivered_at),
    ]
    result: dict[str, float | None] = {}
    last: datetime | None = None
    for name, at in order:
        if name != "received":
            result[name] = _minutes(last, at)
        if at is not None:
            last = at
    result["report"] = None if getattr(row, "escalated", False) else _minutes(row.received_at, row.signed_at)
    result["site"] = _minutes(row.received_at, row.delivered_at)
    return result


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 60.0
