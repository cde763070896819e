"""SLA arithmetic: how long a priority may take, and the deadline that follows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from reading.models import PRIORITY_RANK, Priority

# Defaults of the issue (a consortium's SLA table overrides them): stat 30 min, urgent 60 min,
# routine 24 h, from the moment the study is ready for reading to a signed report.
DEFAULT_MINUTES: Final = {Priority.STAT: 30, Priority.URGENT: 60, Priority.ROUTINE: 24 * 60}


@dataclass(frozen=True)
class SlaEntry:
    priority: Priority
    modality: str | None  # None: every modality
    minutes: int


def sla_minutes(entries: Iterable[SlaEntry], priority: Priority, modality: str | None) -> int:
    """Minutes allowed for ``priority``: the modality's own entry, else the priority's entry,
    else the default."""
    general: int | None = None
    for entry in entries:
        if entry.priority != priority:
            continue
        if entry.modality is not None and modality is not None and entry.modality == modality:
            return entry.minutes
        if entry.modality is None:
            general = entry.minutes
    return general if general is not None else DEFAULT_MINUTES[priority]


def deadline(start: datetime, minutes: int) -> datetime:
    return start + timedelta(minutes=minutes)


def highest(*priorities: Priority | None) -> Priority:
    """The most urgent of the given priorities (routine when none is given)."""
    given = [p for p in priorities if p is not None]
    return min(given, key=PRIORITY_RANK.__getitem__) if given else Priority.ROUTINE


def parse_priority(value: str | None) -> Priority | None:
    """Our priority from what a modality or RIS sends: PS3.3 C.4.11 Requested Procedure
    Priority (STAT, HIGH, ROUTINE, MEDIUM, LOW) or our own words; unknown values give None."""
    if not value:
        return None
    word = value.strip().upper()
    if word in {"STAT", "EMERGENCY", "CRITICAL"}:
        return Priority.STAT
    if word in {"HIGH", "URGENT", "ASAP"}:
        return Priority.URGENT
    if word in {"ROUTINE", "MEDIUM", "LOW"}:
        return Priority.ROUTINE
    return None
