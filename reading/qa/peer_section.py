"""The monthly report's peer-review section: how many of the month's signed reports were
reviewed, the discrepancy and significant-discrepancy rates with their 95 % Wilson intervals
per site and per reader, and the 3b cases in the QA queue — the same figures as
``/api/qa/peer/rates`` (reading/qa/peer.py), folded from the change log."""

from __future__ import annotations

from dataclasses import dataclass

from reportlab.platypus import Flowable
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reading.qa.models import PeerReview
from reading.qa.monthly import MonthScope
from reading.qa.peer import rate_groups
from reading.qa.radpeer import Rate, RateGroup
from reading.qa.report import Kit


def _percent(rate: Rate) -> str:
    if rate.value is None:
        return "—"
    low, high = rate.interval or (0.0, 0.0)
    return f"{rate.value:.1%} ({low:.1%}–{high:.1%})"


@dataclass(frozen=True)
class PeerReviewSection:
    sampled: int
    scored: int
    open_cases: int
    total: RateGroup | None
    by_site: list[RateGroup]
    by_reader: list[RateGroup]
    title: str = "Peer review (RADPEER)"

    def story(self, kit: Kit) -> list[Flowable]:
        if self.total is None:
            return kit.section(
                self.title,
                [kit.text(f"{self.sampled} report(s) of the month sampled; none scored yet.")],
            )
        header = ["", "reviews", "1", "2a", "2b", "3a", "3b", "discrepancy (95 % CI)", "significant (95 % CI)"]

        def rows(groups: list[RateGroup], dimension: str) -> list[list[str]]:
            return [
                [
                    g.key[dimension],
                    str(g.n),
                    *(str(g.scores[s]) for s in ("1", "2a", "2b", "3a", "3b")),
                    _percent(g.discrepancy),
                    _percent(g.significant),
                ]
                for g in groups
            ]

        total = self.total
        w = kit.width
        widths = [w * 0.17, w * 0.08, *([w * 0.05] * 5), w * 0.25, w * 0.25]
        body: list[Flowable] = [
            kit.text(
                f"{self.scored} of {self.sampled} sampled report(s) of the month scored. Discrepancy (2a–3b) "
                f"{_percent(total.discrepancy)}; likely clinically significant (2b, 3b) {_percent(total.significant)}. "
                f"{self.open_cases} 3b case(s) open in the QA review queue."
            ),
            kit.table(["site", *header[1:]], rows(self.by_site, "site"), widths),
            kit.table(["reader", *header[1:]], rows(self.by_reader, "reader"), widths),
        ]
        return kit.section(self.title, body)


def peer_review_section(session: Session, scope: MonthScope) -> PeerReviewSection:
    """The section for ``scope``'s month and consortium (reports signed in that local month)."""
    args = {"start": scope.start, "end": scope.end}
    totals = rate_groups(session, scope.consortium_id, group_by=["consortium"], **args)
    sampled = (
        session.scalar(
            select(func.count()).where(
                PeerReview.consortium_id == scope.consortium_id, PeerReview.period == scope.month
            )
        )
        or 0
    )
    open_cases = (
        session.scalar(
            select(func.count()).where(PeerReview.consortium_id == scope.consortium_id, PeerReview.qa_state == "open")
        )
        or 0
    )
    return PeerReviewSection(
        sampled=sampled,
        scored=totals[0].n if totals else 0,
        open_cases=open_cases,
        total=totals[0] if totals else None,
        by_site=rate_groups(session, scope.consortium_id, group_by=["site"], **args),
        by_reader=rate_groups(session, scope.consortium_id, group_by=["reader"], **args),
    )
