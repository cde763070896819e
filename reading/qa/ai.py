"""AI performance in practice, per model (name and version) and site — plain Python.

- **agreement**: the share of readers' opinions (``ai_feedback``: one agree/disagree per reader
  and finding) that agreed with the model's findings, negatives included. No opinion: ``None``
  (undefined), never 0.
- **flagged rate**: the share of the studies the model screened (it left at least one finding,
  negative or positive) on which it found something (at least one positive finding).
- **AI-prioritised task**: a reading task whose priority the pre-screen raised, as the change
  log records it (issues C/D): a ``task.queued`` whose routing reason names the AI pre-screen
  as the *only* source of a stat or urgent priority ("priority stat from the AI pre-screen" —
  when the order or a rule asked for the same priority the AI raised nothing), or a
  ``task.route_updated`` that raised the priority and was written by the router (AI that came
  after routing; a site's request raising a priority is written under the site user's name).
  A provincial task escalated from an AI-prioritised county task inherits its priority, so it
  counts too. The task is credited to the model(s) whose positive finding suggested that
  priority.
- **queue wait**: queued → first claimed (the ``claimed`` interval of the turnaround table).
  ``peer_wait_p50``: what tasks of the same consortium, tier and (raised) priority that were not
  AI-prioritised waited (median). ``time_saved_p50``: for each AI-prioritised task, the median
  wait of the other tasks at the priority it had *before* the raise minus its own wait; the
  median of those. The priority before a raise after routing is in the log; for a raise at
  routing only "lower" is recorded (the routing reason names the sources that chose the
  priority, not the others): urgent → before was routine; stat → before is taken as urgent,
  the smaller saving, so the figure is a lower bound there.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from reading import events
from reading.qa.figures import percentile

# The actor of the routing job (reading.worklist.tasks.route_study's default), which raises a
# routed task's priority only on the pre-screen's word.
ROUTER_ACTOR: Final = "router"
# reading.worklist.routing._priority names the sources of the chosen priority; the AI alone:
_AI_ALONE: Final = re.compile(r"(?:^|; )priority (stat|urgent) from the AI pre-screen(?:;|$)")
_RANK: Final = {"stat": 0, "urgent": 1, "routine": 2}
_BELOW: Final = {"stat": "urgent", "urgent": "routine"}


@dataclass(frozen=True)
class FindingFact:
    finding_id: int
    study_uid: str
    site_id: int | None
    model: str
    version: str
    positive: bool
    suggested_triage: str | None
    created_at: datetime


@dataclass(frozen=True)
class PriorityChange:
    """A ``task.queued`` or ``task.route_updated`` change, in ``seq`` order."""

    kind: str
    actor: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Raise:
    task_id: int
    to_priority: str
    from_priority: str
    exact: bool  # False: raised to stat at routing, "before" taken as urgent (a lower bound)


def ai_prioritised(changes: Iterable[PriorityChange]) -> dict[int, Raise]:
    """The tasks whose priority the pre-screen raised, with the priority before the raise."""
    raised: dict[int, Raise] = {}
    current: dict[int, str] = {}
    for change in changes:
        payload = change.payload
        if "task_id" not in payload:
            continue
        task_id = int(payload["task_id"])
        if change.kind == events.TASK_QUEUED:
            priority = str(payload.get("priority") or "routine")
            current[task_id] = priority
            parent = payload.get("escalated_from")
            if parent is not None and int(parent) in raised:
                inherited = raised[int(parent)]
                raised[task_id] = Raise(task_id, priority, inherited.from_priority, inherited.exact)
                continue
            found = _AI_ALONE.search(str(payload.get("reason") or ""))
            if found and found.group(1) == priority:
                raised[task_id] = Raise(task_id, priority, _BELOW[priority], exact=priority == "urgent")
        elif change.kind == events.TASK_ROUTE_UPDATED and "priority" in payload:
            new, old = str(payload["priority"]), current.get(task_id)
            current[task_id] = new
            if change.actor != ROUTER_ACTOR or old is None or _RANK.get(new, 2) >= _RANK.get(old, 2):
                continue
            before = raised.get(task_id)
            raised[task_id] = Raise(
                task_id, new, before.from_priority if before else old, before.exact if before else True
            )
    return raised


@dataclass
class ModelSite:
    model: str
    version: str
    site: str
    screened: int = 0  # studies with at least one finding of the model
    flagged: int = 0  # of them, with at least one positive finding
    reviewed: int = 0  # findings with at least one reader's opinion
    opinions: int = 0
    agreed: int = 0
    prioritised: int = 0  # AI-prioritised tasks credited to the model
    waits: list[float] = field(default_factory=list)  # their queue waits (claimed ones)
    peer_waits: list[float] = field(default_factory=list)  # per task: median wait of its peers
    saved: list[float] = field(default_factory=list)  # per task: minutes saved

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.opinions if self.opinions else None

    @property
    def flagged_rate(self) -> float | None:
        return self.flagged / self.screened if self.screened else None

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "site": self.site,
            "screened": self.screened,
            "flagged": self.flagged,
            "flagged_rate": _round(self.flagged_rate, 4),
            "reviewed": self.reviewed,
            "opinions": self.opinions,
            "agreed": self.agreed,
            "agreement": _round(self.agreement, 4),
            "prioritised": {
                "tasks": self.prioritised,
                "claimed": len(self.waits),
                "wait_p50": _median(self.waits),
                "peer_wait_p50": _median(self.peer_waits),
                "time_saved_n": len(self.saved),
                "time_saved_p50": _median(self.saved),
            },
        }


def ai_performance(
    findings: Iterable[FindingFact],
    opinions: Mapping[int, tuple[int, int]],
    rows: Iterable[Any],
    raised: Mapping[int, Raise],
    *,
    counted: Callable[[FindingFact], bool],
    names: Callable[[str, Any], str],
) -> list[ModelSite]:
    """Agreement, flagged rate and the waits of AI-prioritised tasks per model version and site.

    ``findings``: those of the period (``counted``) and any others that may explain a raise;
    ``opinions``: finding id → (agreed, opinions); ``rows``: the period's ``qa_turnaround`` rows;
    ``raised``: ``ai_prioritised`` of their changes."""
    table: dict[tuple[str, str, str], ModelSite] = {}

    def entry(model: str, version: str, site: str) -> ModelSite:
        return table.setdefault((model, version, site), ModelSite(model, version, site))

    by_study: dict[str, list[FindingFact]] = defaultdict(list)
    screened: dict[tuple[str, str, str], dict[str, bool]] = defaultdict(dict)
    for finding in findings:
        by_study[finding.study_uid].append(finding)
        if not counted(finding):
            continue
        site = names("site", finding.site_id) if finding.site_id is not None else "—"
        key = (finding.model, finding.version, site)
        studies = screened[key]
        studies[finding.study_uid] = studies.get(finding.study_uid, False) or finding.positive
        agreed, total = opinions.get(finding.finding_id, (0, 0))
        line = entry(*key)
        if total:
            line.reviewed += 1
            line.opinions += total
            line.agreed += agreed
    for key, studies in screened.items():
        entry(*key).screened = len(studies)
        entry(*key).flagged = sum(studies.values())
    _credit_raises(list(rows), raised, by_study, entry, names)
    return [table[key] for key in sorted(table)]


def _credit_raises(
    rows: list[Any],
    raised: Mapping[int, Raise],
    by_study: Mapping[str, list[FindingFact]],
    entry: Callable[[str, str, str], ModelSite],
    names: Callable[[str, Any], str],
) -> None:
    waits: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row.task_id not in raised and row.claimed_at is not None:
            waits[(row.consortium_id, row.tier, row.priority)].append(_wait(row))
    medians = {key: percentile(values, 50) for key, values in waits.items()}
    for row in rows:
        lift = raised.get(row.task_id)
        if lift is None:
            continue
        site = names("site", row.site_id)
        study = by_study.get(row.study_uid, [])
        suggesting = {(f.model, f.version) for f in study if f.positive and f.suggested_triage == lift.to_priority}
        models = suggesting or {(f.model, f.version) for f in study if f.positive} or {("—", "—")}
        peer = medians.get((row.consortium_id, row.tier, row.priority))
        before = medians.get((row.consortium_id, row.tier, lift.from_priority))
        for model, version in sorted(models):
            line = entry(model, version, site)
            line.prioritised += 1
            if row.claimed_at is None:
                continue
            wait = _wait(row)
            line.waits.append(wait)
            if peer is not None:
                line.peer_waits.append(peer)
            if before is not None:
                line.saved.append(before - wait)


def _wait(row: Any) -> float:
    return float((row.claimed_at - row.queued_at).total_seconds() / 60.0)


def _median(values: list[float]) -> float | None:
    return round(percentile(values, 50), 2) if values else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
