"""The reading task's state machine: the one place a task's ``state`` changes.

``transition`` checks the move is legal, stamps the time and appends the event in the caller's
transaction (STYLE.md: one transition function). It works on the ORM row so that the state and
the event are written together; it takes no session of its own beyond appending to the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from pacs.index.db import append_change
from reading import events
from reading.models import ReadingTask, TaskState

ALLOWED: Final[dict[TaskState, frozenset[TaskState]]] = {
    TaskState.QUEUED: frozenset({TaskState.CLAIMED, TaskState.ESCALATED}),
    TaskState.CLAIMED: frozenset({TaskState.QUEUED, TaskState.PRELIMINARY, TaskState.SIGNED, TaskState.ESCALATED}),
    # A preliminary report is kept when the claim is released or lapses; the next reader finds it.
    TaskState.PRELIMINARY: frozenset({TaskState.QUEUED, TaskState.PRELIMINARY, TaskState.SIGNED, TaskState.ESCALATED}),
    TaskState.SIGNED: frozenset({TaskState.AMENDED}),
    TaskState.AMENDED: frozenset({TaskState.AMENDED}),
    TaskState.ESCALATED: frozenset(),
}

# The event each move appends; a move back to the queue names why (released or lease expired).
EVENT_OF: Final[dict[TaskState, str]] = {
    TaskState.QUEUED: events.TASK_QUEUED,
    TaskState.CLAIMED: events.TASK_CLAIMED,
    TaskState.PRELIMINARY: events.TASK_PRELIMINARY,
    TaskState.SIGNED: events.TASK_SIGNED,
    TaskState.ESCALATED: events.TASK_ESCALATED,
    TaskState.AMENDED: events.TASK_AMENDED,
}

OPEN_STATES: Final = frozenset({TaskState.QUEUED, TaskState.CLAIMED, TaskState.PRELIMINARY})
HELD_STATES: Final = frozenset({TaskState.CLAIMED, TaskState.PRELIMINARY})  # under a reader's lease


class IllegalTransition(ValueError):
    """A move the state machine does not allow; the message says from where to where."""

    def __init__(self, task_id: int, current: str, to: str) -> None:
        allowed = ", ".join(sorted(ALLOWED[TaskState(current)])) or "none (the task is closed)"
        super().__init__(f"task {task_id} is {current}: it cannot become {to} (allowed from {current}: {allowed})")
        self.task_id = task_id
        self.current = current
        self.to = to


def transition(
    session: Session,
    task: ReadingTask,
    to: TaskState,
    *,
    actor: str,
    now: datetime,
    event: str | None = None,
    **detail: Any,
) -> None:
    """Move ``task`` to ``to`` and append the event (``event`` overrides the default kind, e.g.
    ``task.released``). Raises ``IllegalTransition``; nothing is written then."""
    current = TaskState(task.state)
    if to not in ALLOWED[current]:
        raise IllegalTransition(task.id, current, to)
    task.state = to
    task.updated_at = now
    if to not in HELD_STATES:
        task.claimed_by = None
        task.claimed_at = None
        task.lease_expires_at = None
    append_change(
        session,
        event or EVENT_OF[to],
        study_uid=task.study_uid,
        site_id=task.site_id,
        actor=actor,
        task_id=task.id,
        tier=task.tier,
        priority=task.priority,
        from_state=current.value,
        **detail,
    )
