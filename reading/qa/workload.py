"""Per-site workload: the reads the reading centre did for each site, the basis of settlement
between the institutions of a consortium — plain Python over ``qa_turnaround`` rows.

What counts, as a billing officer expects it:

- a **read** is a reading task closed with a signed report; it counts once, at the tier that
  signed it (county or provincial), in the local month of its signing (the consortium's time
  zone) — the work was done then, whatever month the images came in;
- a study **escalated** to the provincial tier counts as a provincial read (the provincial
  expert signed its report); the county task it left is not a read but is counted apart, as
  ``escalated`` at the county tier, so the county's preliminary work is visible to whoever sets
  the fee for it;
- an addendum after signing is not a new read (the turnaround row keeps the first signing);
- open tasks are not counted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final
from zoneinfo import ZoneInfo

COLUMNS: Final = (
    "consortium",
    "site",
    "site_tier",
    "modality",
    "tier",
    "signed",
    "stat",
    "urgent",
    "routine",
    "escalated",
)
# Columns a spreadsheet must keep as text (reading/qa/sheets.py).
TEXT_COLUMNS: Final = frozenset({"consortium", "site", "site_tier", "modality", "tier"})


@dataclass
class WorkloadLine:
    """Reads of one site, modality and reading tier in the period."""

    consortium: str
    site: str
    site_tier: str
    modality: str
    tier: str
    signed: int = 0  # reads: tasks closed with a signed report at this tier
    stat: int = 0  # of them, by the task's priority
    urgent: int = 0
    routine: int = 0
    escalated: int = 0  # county tasks closed by escalation (reported by the provincial tier)

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


def workload(
    rows: Iterable[Any],
    *,
    start: date,
    end: date,
    zones: Callable[[int], ZoneInfo],
    names: Callable[[str, Any], str],
) -> list[WorkloadLine]:
    """Reads per consortium, site, modality and tier among ``rows`` (``qa_turnaround`` rows or
    anything with their attributes) closed from local date ``start`` up to (not including)
    ``end``, sorted by consortium, site, modality and tier."""
    lines: dict[tuple[str, str, str, str], WorkloadLine] = {}
    for row in rows:
        if row.signed_at is None:
            continue
        local = row.signed_at.astimezone(zones(row.consortium_id)).date()
        if not start <= local < end:
            continue
        consortium = names("consortium", row.consortium_id)
        site = names("site", row.site_id)
        modality = row.modality or "—"
        line = lines.setdefault(
            (consortium, site, modality, row.tier),
            WorkloadLine(consortium, site, row.site_tier, modality, row.tier),
        )
        if row.escalated:
            line.escalated += 1
            continue
        line.signed += 1
        if row.priority in ("stat", "urgent", "routine"):
            setattr(line, row.priority, getattr(line, row.priority) + 1)
    return [lines[key] for key in sorted(lines)]


def signed_per_site(lines: Iterable[WorkloadLine]) -> dict[str, dict[str, int]]:
    """Site → reads per tier (``county``, ``provincial``) and ``escalated``: the report's columns."""
    totals: dict[str, dict[str, int]] = {}
    for line in lines:
        site = totals.setdefault(line.site, {"county": 0, "provincial": 0, "escalated": 0})
        site[line.tier] = site.get(line.tier, 0) + line.signed
        site["escalated"] += line.escalated
    return totals


def workload_csv(lines: Sequence[WorkloadLine]) -> str:
    """One line per consortium, site, modality and tier (no total lines: a spreadsheet sums)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow([getattr(line, name) for name in COLUMNS])
    return out.getvalue()
