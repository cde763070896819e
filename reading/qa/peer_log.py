"""Peer reviews folded from the change log — plain Python, no database.

Every change of a ``peer_review`` row is an event (``peer.sampled`` … ``peer.qa_closed``,
``reading/events.py``) whose payload carries what the figures need, so the discrepancy rates
are computed from the log alone and the table can be checked against it (the test does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from reading import events
from reading.qa.radpeer import ScoredReview, parse_score

KINDS: Final = (
    events.PEER_SAMPLED,
    events.PEER_ASSIGNED,
    events.PEER_UNASSIGNED,
    events.PEER_SCORED,
    events.PEER_QA_OPENED,
    events.PEER_QA_CLOSED,
)


@dataclass(frozen=True)
class LoggedChange:
    """A row of ``changes`` (the site is a column of its own, not in the payload)."""

    seq: int
    kind: str
    at: datetime
    site_id: int | None
    actor: str | None
    payload: dict[str, Any]


@dataclass
class ReviewFacts:
    """A ``peer_review`` row as the log tells it."""

    review_id: int
    report_id: int
    consortium_id: int
    site_id: int
    reader_id: int
    modality: str | None
    body_part: str | None
    period: str
    report_signed_at: datetime
    state: str = "unassigned"
    reviewer_id: int | None = None
    unassigned_reason: str | None = None
    score: str | None = None
    comment: str | None = None
    qa_state: str | None = None
    qa_outcome: str | None = None


def replay(log: Iterable[LoggedChange]) -> dict[int, ReviewFacts]:
    """Every sampled review (by id) in the state its events, in ``seq`` order, leave it."""
    found: dict[int, ReviewFacts] = {}
    for event in log:
        payload = event.payload
        if event.kind not in KINDS or "review_id" not in payload:
            continue
        review_id = int(payload["review_id"])
        if event.kind == events.PEER_SAMPLED:
            found[review_id] = ReviewFacts(
                review_id,
                int(payload["report_id"]),
                int(payload["consortium_id"]),
                int(event.site_id or 0),
                int(payload["reader_id"]),
                payload.get("modality"),
                payload.get("body_part"),
                str(payload["period"]),
                datetime.fromisoformat(payload["report_signed_at"]),
            )
            continue
        review = found.get(review_id)
        if review is None:  # its sampling is not in the log given
            continue
        _apply(review, event.kind, payload)
    return found


def _apply(review: ReviewFacts, kind: str, payload: dict[str, Any]) -> None:
    if kind == events.PEER_ASSIGNED:
        review.state, review.reviewer_id, review.unassigned_reason = "assigned", int(payload["reviewer_id"]), None
    elif kind == events.PEER_UNASSIGNED:
        review.state, review.reviewer_id, review.unassigned_reason = "unassigned", None, payload.get("reason")
    elif kind == events.PEER_SCORED:
        review.state, review.score, review.comment = "scored", str(payload["score"]), payload.get("comment")
    elif kind == events.PEER_QA_OPENED:
        review.qa_state = "open"
    elif kind == events.PEER_QA_CLOSED:
        review.qa_state, review.qa_outcome = "closed", payload.get("outcome")


def scored(reviews: Iterable[ReviewFacts]) -> list[ScoredReview]:
    """The scored ones, as the rates take them."""
    return [
        ScoredReview(
            review_id=r.review_id,
            consortium_id=r.consortium_id,
            site_id=r.site_id,
            reader_id=r.reader_id,
            reviewer_id=r.reviewer_id or 0,
            modality=r.modality,
            period=r.period,
            report_signed_at=r.report_signed_at,
            score=parse_score(r.score),
        )
        for r in reviews
        if r.state == "scored" and r.score is not None
    ]
