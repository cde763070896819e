"""Tier-aware routing, as pure functions: which tier (and group) reads a study, at which
priority, by when — and why, in words an administrator can check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from reading.models import Priority, ReadingTier
from reading.worklist.roster import describe_local
from reading.worklist.sla import SlaEntry, deadline, highest, sla_minutes

# Objects that are not images (reports, presentation states, AI results) never pick the modality.
NON_IMAGE_MODALITIES: Final = frozenset({"SR", "PR", "KO", "SEG", "DOC", "REG", "OT", "RTSTRUCT"})
GRASSROOTS_TIERS: Final = frozenset({"village", "township"})


@dataclass(frozen=True)
class StudyFacts:
    study_uid: str
    consortium_id: int
    site_id: int
    site_name: str
    site_tier: str
    modality: str | None
    body_part: str | None
    ready_at: datetime
    order_priority: Priority | None = None  # what the modality / RIS sent
    ai_priority: Priority | None = None  # what the pre-screen suggested
    ai_may_raise: bool = False  # a validated model, or demo mode (issue C)
    requested_priority: Priority | None = None  # the site's request
    second_opinion: bool = False  # the site asked for the provincial tier


@dataclass(frozen=True)
class ReaderFacts:
    reader_id: int
    tier: str
    modalities: frozenset[str]
    body_parts: frozenset[str]  # empty: every body part
    site_ids: frozenset[int]  # the sites he reads for
    on_duty: bool
    group_ids: frozenset[int] = frozenset()

    def credentialed(self, modality: str | None, body_part: str | None) -> bool:
        if modality is None or modality not in self.modalities:
            return False
        return not self.body_parts or body_part is None or body_part in self.body_parts

    def serves(self, site_id: int) -> bool:
        return site_id in self.site_ids


@dataclass(frozen=True)
class RuleFacts:
    rule_id: int
    name: str
    site_id: int | None = None
    site_tier: str | None = None
    modality: str | None = None
    body_part: str | None = None
    to_tier: str | None = None
    to_group_id: int | None = None
    min_priority: Priority | None = None

    def matches(self, study: StudyFacts) -> bool:
        return (
            (self.site_id is None or self.site_id == study.site_id)
            and (self.site_tier is None or self.site_tier == study.site_tier)
            and (self.modality is None or self.modality == study.modality)
            and (self.body_part is None or self.body_part == study.body_part)
        )


@dataclass(frozen=True)
class Route:
    tier: ReadingTier
    group_id: int | None
    priority: Priority
    deadline_at: datetime
    explanation: str


def main_modality(modalities: str | None) -> str | None:
    """The study's imaging modality from its backslash-joined list (CT over SR, …)."""
    found = [m for m in (modalities or "").split("\\") if m and m not in NON_IMAGE_MODALITIES]
    return found[0] if found else None


def _priority(study: StudyFacts, floor: Priority | None, reasons: list[str]) -> Priority:
    sources: list[tuple[str, Priority | None]] = [
        ("the order", study.order_priority),
        ("the site's request", study.requested_priority),
        ("a rule", floor),
    ]
    if study.ai_priority is not None:
        if study.ai_may_raise:
            sources.append(("the AI pre-screen", study.ai_priority))
        else:
            reasons.append(f"AI suggested {study.ai_priority} (advisory: the model is not validated here)")
    chosen = highest(*(p for _, p in sources))
    named = [name for name, p in sources if p == chosen]
    reasons.append(f"priority {chosen} from {' and '.join(named)}" if named else f"priority {chosen} (default)")
    return chosen


def route(
    study: StudyFacts,
    readers: Sequence[ReaderFacts],
    rules: Sequence[RuleFacts],
    sla: Sequence[SlaEntry],
    *,
    timezone: str,
    now: datetime,
) -> Route:
    """Decide tier, group, priority and deadline for a study that is ready for reading.

    Grassroots sites (village, township) go to the county tier; a county (or provincial) site's
    request is a second opinion for the provincial tier; an administrator's first matching rule
    may change tier, group or raise the priority; a county task with no credentialed county
    reader on duty for the modality and body part goes to the provincial tier when a provincial
    reader serves the site.
    """
    reasons: list[str] = []
    if study.second_opinion:
        tier = ReadingTier.PROVINCIAL
        reasons.append("routed to provincial: the site asked for a second opinion")
    elif study.site_tier in GRASSROOTS_TIERS:
        tier = ReadingTier.COUNTY
        reasons.append(f"routed to county: {study.site_tier} site {study.site_name}")
    else:
        tier = ReadingTier.PROVINCIAL
        reasons.append(f"routed to provincial: a {study.site_tier} site's study is a second opinion")
    group_id: int | None = None
    floor: Priority | None = None
    rule = next((r for r in rules if r.matches(study)), None)
    if rule is not None:
        if rule.to_tier is not None and rule.to_tier != tier:
            tier = ReadingTier(rule.to_tier)
            reasons.append(f"rule {rule.name!r} sends it to {tier}")
        if rule.to_group_id is not None:
            group_id = rule.to_group_id
            reasons.append(f"rule {rule.name!r} gives it to reading group {rule.to_group_id}")
        floor = rule.min_priority
    what = " ".join(p for p in (study.modality or "unknown modality", study.body_part) if p)
    if tier is ReadingTier.COUNTY:
        fit = [
            r
            for r in readers
            if r.tier == ReadingTier.COUNTY
            and r.serves(study.site_id)
            and r.credentialed(study.modality, study.body_part)
            and (group_id is None or group_id in r.group_ids)
        ]
        if not any(r.on_duty for r in fit):
            local = describe_local(now, timezone)
            provincial = [
                r
                for r in readers
                if r.tier == ReadingTier.PROVINCIAL
                and r.serves(study.site_id)
                and r.credentialed(study.modality, study.body_part)
            ]
            if provincial:
                tier, group_id = ReadingTier.PROVINCIAL, None
                reasons.append(f"routed to provincial: no county reader on duty for {what} at {local}")
            else:
                reasons.append(
                    f"no county reader on duty for {what} at {local} and no provincial reader serves "
                    f"{study.site_name}: queued for county"
                )
    priority = _priority(study, floor, reasons)
    minutes = sla_minutes(sla, priority, study.modality)
    reasons.append(f"SLA {minutes} min")
    return Route(tier, group_id, priority, deadline(study.ready_at, minutes), "; ".join(reasons))
