"""Which signed reports are peer-reviewed, and by whom — plain Python.

Sampling is a quota per reader per local month: of the ``n`` reports a reader signed for a
consortium in a month, ⌈share × n⌉ are reviewed (at least one when he signed any, so a reader
with few reports is still seen). A run draws what is missing from the quota among the reports
not sampled yet, so running it again — or daily through the month — never samples a report
twice nor overshoots the share. The draw is seeded: the seed is recorded, the draw repeats.

The reviewer is another active reader of the same or a higher tier than the reader reviewed,
who reads for the study's site and is credentialed for its modality and body part — the one
with the fewest open reviews, a reader of the same tier before a higher one (provincial
experts are few), then the lowest id. A run assigns the reports with the fewest eligible
reviewers first, so a scarce reviewer (the one other provincial expert) is not taken up by
reports that others could review.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from reading.models import ReadingTier
from reading.worklist.routing import ReaderFacts

TIER_RANK: Final = {ReadingTier.COUNTY.value: 0, ReadingTier.PROVINCIAL.value: 1}


def quota(signed: int, share: float) -> int:
    """How many of a reader's ``signed`` reports of a month are reviewed: ⌈share × signed⌉.
    The share counts as the decimal it was written as — in binary floating point 0.07 × 100 is
    7.000000000000001, whose ceiling would be 8."""
    if not 0 < share <= 1:
        raise ValueError(f"the peer-review share is a fraction in (0, 1], not {share}")
    return min(signed, math.ceil(Fraction(str(share)) * signed))


def draw(candidates: Collection[int], k: int, rng: random.Random) -> list[int]:
    """``k`` of the ``candidates`` (report ids) at random, the same ones for the same seed
    whatever order the database returned them in."""
    if k <= 0:  # the quota is met (or the share was lowered since): draw nothing
        return []
    ordered = sorted(candidates)
    return sorted(rng.sample(ordered, min(k, len(ordered))))


@dataclass(frozen=True)
class Choice:
    reviewer_id: int | None
    reason: str  # why this reviewer, or why there is none


@dataclass(frozen=True)
class Wanted:
    """What a report asks of its reviewer."""

    not_readers: frozenset[int]  # its author and signer
    reviewed_tier: str  # the tier of the reader reviewed
    site_id: int
    site_name: str
    modality: str | None
    body_part: str | None


def eligible(readers: Sequence[ReaderFacts], wanted: Wanted) -> list[ReaderFacts]:
    """The readers who may review the report."""
    return _sorted_out(readers, wanted)[3]


def _sorted_out(
    readers: Sequence[ReaderFacts], wanted: Wanted
) -> tuple[list[ReaderFacts], list[ReaderFacts], list[ReaderFacts], list[ReaderFacts]]:
    """The other readers as (below the tier, not reading for the site, not credentialed, eligible)."""
    floor = TIER_RANK.get(wanted.reviewed_tier, 0)
    below: list[ReaderFacts] = []
    elsewhere: list[ReaderFacts] = []
    uncredentialed: list[ReaderFacts] = []
    fit: list[ReaderFacts] = []
    for reader in readers:
        if reader.reader_id in wanted.not_readers:
            continue
        if TIER_RANK.get(reader.tier, -1) < floor:
            below.append(reader)
        elif not reader.serves(wanted.site_id):
            elsewhere.append(reader)
        elif not reader.credentialed(wanted.modality, wanted.body_part):
            uncredentialed.append(reader)
        else:
            fit.append(reader)
    return below, elsewhere, uncredentialed, fit


def choose_reviewer(readers: Sequence[ReaderFacts], open_reviews: Mapping[int, int], wanted: Wanted) -> Choice:
    """The reviewer for one report among the active ``readers``. Without one, the reason says
    what ruled each reader out."""
    below, elsewhere, uncredentialed, fit = _sorted_out(readers, wanted)
    if not fit:
        others = len(below) + len(elsewhere) + len(uncredentialed)
        if not others:
            return Choice(None, "no other active reader")
        what = " ".join(p for p in (wanted.modality, wanted.body_part) if p) or "this study"
        ruled_out = [
            f"{len(below)} below the {wanted.reviewed_tier} tier" if below else "",
            f"{len(elsewhere)} not reading for {wanted.site_name}" if elsewhere else "",
            f"{len(uncredentialed)} not credentialed for {what}" if uncredentialed else "",
        ]
        return Choice(
            None, f"no eligible reviewer among {others} other active reader(s): " + ", ".join(r for r in ruled_out if r)
        )
    floor = TIER_RANK.get(wanted.reviewed_tier, 0)
    best = min(fit, key=lambda r: (open_reviews.get(r.reader_id, 0), TIER_RANK.get(r.tier, 0) - floor, r.reader_id))
    return Choice(
        best.reader_id,
        f"fewest open reviews ({open_reviews.get(best.reader_id, 0)}) of {len(fit)} eligible reviewer(s)",
    )
