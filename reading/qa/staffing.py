"""Who could have claimed a task while it waited in the queue — plain Python, no database.

The breach list names the interval that ran long; when that is the wait in the queue, QA wants
to know why: was nobody on duty who may read the study (a roster gap: the night, a weekend),
or were readers on duty and busy (a backlog)? The readers who count are the active readers of
the task's tier who read for its site and are credentialed for its modality and body part —
those routing would offer it to (``reading/worklist/routing.py``); their rosters are walked over
the wait (``reading.worklist.roster.duty_spans``).

The rule: a wait during which such readers were on duty for **less than half** of it is a
roster gap ("no county reader on duty", or "… for 597 of 612 min" when someone came on duty
before the claim); otherwise it is a backlog, with the most of them on duty at once ("2 county
readers on duty: queue backlog"). A tier with no such reader at all says so ("no county reader
credentialed for DX CHEST reads for this site").

Rosters are today's: the table keeps no history of rosters, so a roster changed since the
wait explains it as it is now. The task's reading group is not kept in ``qa_turnaround``;
every reader of the tier counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from reading.worklist.roster import Window, duty_spans

StaffingKind = Literal["not_credentialed", "no_reader_on_duty", "backlog"]
# Covered for less than this share of the wait: nobody was there to claim it.
UNSTAFFED_SHARE: Final = 0.5


@dataclass(frozen=True)
class RosteredReader:
    """A reader as the breach list sees him: what he may read, for which sites, and his roster
    in his home consortium's time zone."""

    reader_id: int
    tier: str
    modalities: frozenset[str]
    body_parts: frozenset[str]  # empty: every body part
    site_ids: frozenset[int]
    windows: tuple[Window, ...]
    timezone: str

    def may_read(self, tier: str, site_id: int, modality: str | None, body_part: str | None) -> bool:
        if self.tier != tier or site_id not in self.site_ids:
            return False
        if modality is None or modality not in self.modalities:
            return False
        return not self.body_parts or body_part is None or body_part in self.body_parts


@dataclass(frozen=True)
class Staffing:
    """The readers who could have claimed a task during its wait in the queue."""

    tier: str
    what: str  # "CT HEAD"
    credentialed: int  # readers of the tier who read for the site and are credentialed
    wait_minutes: float
    covered_minutes: float  # minutes of the wait with at least one of them on duty
    most_on_duty: int  # the most of them on duty at once during the wait

    @property
    def kind(self) -> StaffingKind:
        if self.credentialed == 0:
            return "not_credentialed"
        if self.covered_minutes < UNSTAFFED_SHARE * self.wait_minutes:
            return "no_reader_on_duty"
        return "backlog"

    def describe(self) -> str:
        """The cause in a QA officer's words."""
        if self.kind == "not_credentialed":
            return f"no {self.tier} reader credentialed for {self.what} reads for this site"
        uncovered = self.wait_minutes - self.covered_minutes
        if self.kind == "no_reader_on_duty":
            if self.covered_minutes == 0:
                return f"no {self.tier} reader on duty"
            return f"no {self.tier} reader on duty for {uncovered:.0f} of {self.wait_minutes:.0f} min"
        readers = f"{self.most_on_duty} {self.tier} reader{'' if self.most_on_duty == 1 else 's'} on duty"
        if uncovered >= 0.5:
            readers += f" for {self.covered_minutes:.0f} of {self.wait_minutes:.0f} min"
        return f"{readers}: queue backlog"


# A roster as a value: readers with the same windows in the same zone are counted together, so
# a wait walks each distinct roster once (a county's readers mostly share a few rosters).
_Roster = tuple[tuple[Window, ...], str]


class StaffingLookup:
    """``lookup(row, start, end)``: the ``Staffing`` of a ``qa_turnaround`` row (its tier,
    site, modality and body part) over the wait from ``start`` to ``end``."""

    def __init__(self, readers: Sequence[RosteredReader]) -> None:
        self._readers = list(readers)
        self._eligible: dict[tuple[str, int, str | None, str | None], list[tuple[_Roster, int]]] = {}
        self._days: dict[tuple[_Roster, date], list[tuple[datetime, datetime]]] = {}

    def _rosters(
        self, tier: str, site_id: int, modality: str | None, body_part: str | None
    ) -> list[tuple[_Roster, int]]:
        key = (tier, site_id, modality, body_part)
        found = self._eligible.get(key)
        if found is None:
            counts: dict[_Roster, int] = {}
            for reader in self._readers:
                if reader.may_read(tier, site_id, modality, body_part):
                    roster = (reader.windows, reader.timezone)
                    counts[roster] = counts.get(roster, 0) + 1
            found = self._eligible[key] = sorted(counts.items(), key=lambda item: -item[1])
        return found

    def __call__(self, row: Any, start: datetime, end: datetime) -> Staffing:
        rosters = self._rosters(row.tier, row.site_id, row.modality, row.body_part)
        what = " ".join(p for p in (row.modality, row.body_part) if p) or "this study"
        wait = max((end - start).total_seconds() / 60.0, 0.0)
        # Sweep the duty spans of every roster: +n readers when a span opens, -n when it closes
        # (closings first at the same instant, so a hand-over does not count both shifts).
        edges: list[tuple[datetime, int]] = []
        for roster, readers in rosters:
            for begin, finish in self._spans(roster, start, end):
                edges += [(begin, readers), (finish, -readers)]
        edges.sort()
        covered, most, on_duty, since = 0.0, 0, 0, start
        for moment, change in edges:
            if on_duty > 0:
                covered += (moment - since).total_seconds() / 60.0
            on_duty += change
            most = max(most, on_duty)
            since = moment
        return Staffing(
            tier=row.tier,
            what=what,
            credentialed=sum(readers for _, readers in rosters),
            wait_minutes=round(wait, 1),
            covered_minutes=round(covered, 1),
            most_on_duty=most,
        )

    def _spans(self, roster: _Roster, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """``duty_spans`` of the wait, from the spans of each local day it touches, each day's
        walked once per roster (a province's breach list asks about the same days thousands of
        times). A shift past midnight comes as two spans that touch: the sweep counts it once."""
        windows, timezone = roster
        zone = ZoneInfo(timezone)
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        found: list[tuple[datetime, datetime]] = []
        while day <= last:
            spans = self._days.get((roster, day))
            if spans is None:
                midnight = datetime.combine(day, time(), tzinfo=zone)
                following = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
                spans = self._days[(roster, day)] = duty_spans(windows, midnight, following, timezone)
            found += [(max(b, start), min(f, end)) for b, f in spans if b < end and f > start]
            day += timedelta(days=1)
        return found
