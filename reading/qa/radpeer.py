"""RADPEER scores and discrepancy rates with Wilson score intervals — plain Python.

Scores (ACR RADPEER, the 2016 scale):

- ``1``  concur with the interpretation;
- ``2``  discrepancy in interpretation, not ordinarily expected to be made (an understandable
  miss) — ``2a`` unlikely to be clinically significant, ``2b`` likely to be;
- ``3``  discrepancy that should be made almost every time (a misinterpretation) —
  ``3a`` unlikely to be clinically significant, ``3b`` likely to be.

Rates, each over the scored reviews of a group (a reader, a site, …):

- *discrepancy rate*: scores 2a, 2b, 3a and 3b (any score but 1);
- *significant discrepancy rate*: 2b and 3b (likely clinically significant, whichever the
  kind of miss).

Each rate comes with a Wilson score interval (95 % by default): unlike the normal
approximation it stays within 0–1 and is sensible for the small counts a reader has in a month
(0 of 12 is not "0 % ± 0").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final


class Score(StrEnum):
    CONCUR = "1"
    UNDERSTANDABLE_MINOR = "2a"
    UNDERSTANDABLE_SIGNIFICANT = "2b"
    MISINTERPRETATION_MINOR = "3a"
    MISINTERPRETATION_SIGNIFICANT = "3b"


SCORES: Final = tuple(s.value for s in Score)
DISCREPANT: Final = frozenset(Score) - {Score.CONCUR}
SIGNIFICANT: Final = frozenset({Score.UNDERSTANDABLE_SIGNIFICANT, Score.MISINTERPRETATION_SIGNIFICANT})
# Scores that open a case in the QA review queue.
TO_QA_QUEUE: Final = frozenset({Score.MISINTERPRETATION_SIGNIFICANT})
# What QA decides when it closes a case of the queue (the comment says what was done).
QA_OUTCOMES: Final = ("confirmed", "not_confirmed")
# The 97.5th percentile of the standard normal distribution: a two-sided 95 % interval.
Z95: Final = 1.959963984540054
GROUPS: Final = ("consortium", "site", "reader", "modality", "period")


class ScoreError(ValueError):
    """Not a RADPEER score; the message lists the scores."""


def parse_score(value: str) -> Score:
    """``"2B"`` → ``Score("2b")``; raises ``ScoreError`` for anything else."""
    try:
        return Score(value.strip().lower())
    except ValueError:
        raise ScoreError(f"a RADPEER score is one of {', '.join(SCORES)}, not {value!r}") from None


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of the proportion ``k / n`` (``None`` when ``n`` is 0):

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) · √(p(1 − p)/n + z²/4n²)

    Raises ``ValueError`` unless 0 ≤ k ≤ n."""
    if n == 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"{k} of {n} is not a proportion")
    p = k / n
    z2 = z * z
    scale = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At k = 0 (or n) the bound is exactly 0 (or 1); floating point gives 1e-17 (0.9999999999999999).
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


@dataclass(frozen=True)
class ScoredReview:
    """What the rates need of one scored review (folded from the change log)."""

    review_id: int
    consortium_id: int
    site_id: int
    reader_id: int  # whose report was reviewed
    reviewer_id: int
    modality: str | None
    period: str  # local month the report was signed
    report_signed_at: datetime
    score: Score


@dataclass(frozen=True)
class Rate:
    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.k, self.n)

    def as_json(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "k": self.k,
            "n": self.n,
            "rate": None if self.value is None else round(self.value, 4),
            "ci95_low": None if interval is None else round(interval[0], 4),
            "ci95_high": None if interval is None else round(interval[1], 4),
        }


@dataclass
class RateGroup:
    key: dict[str, str]
    scores: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))

    @property
    def n(self) -> int:
        return sum(self.scores.values())

    @property
    def discrepancy(self) -> Rate:
        return Rate(sum(self.scores[s] for s in DISCREPANT), self.n)

    @property
    def significant(self) -> Rate:
        return Rate(sum(self.scores[s] for s in SIGNIFICANT), self.n)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.key,
            "reviews": self.n,
            "scores": dict(self.scores),
            "discrepancy": self.discrepancy.as_json(),
            "significant": self.significant.as_json(),
        }


def rates(
    reviews: Iterable[ScoredReview], *, group_by: Sequence[str], names: Callable[[str, Any], str]
) -> list[RateGroup]:
    """Score counts and both rates per group of ``reviews``; ``names(dimension, id)`` labels a
    consortium, site or reader. Raises ``ScoreError`` for an unknown grouping."""
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise ScoreError(f"cannot group peer reviews by {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    groups: dict[tuple[str, ...], RateGroup] = {}
    for review in reviews:
        key = {dimension: _label(review, dimension, names) for dimension in group_by}
        group = groups.setdefault(tuple(key.values()), RateGroup(key))
        group.scores[review.score.value] += 1
    return [groups[k] for k in sorted(groups)]


def _label(review: ScoredReview, dimension: str, names: Callable[[str, Any], str]) -> str:
    if dimension == "consortium":
        return names("consortium", review.consortium_id)
    if dimension == "site":
        return names("site", review.site_id)
    if dimension == "reader":
        return names("reader", review.reader_id)
    if dimension == "modality":
        return review.modality or "—"
    return review.period
