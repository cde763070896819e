"""Peer review (RADPEER) in the index: a month's signed reports sampled per reader and assigned,
blinded, to another reader; the reviewer's score; the QA review queue of 3b scores; and the
discrepancy rates, folded from the change log. Every state change appends its ``peer.*`` event
in the same transaction. A peer review is not a reading task: it never enters a worklist nor
the turnaround and SLA figures.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.identity.users import granted_site_ids
from pacs.index.db import append_change
from pacs.index.models import Change, Site, Study, User
from reading import events
from reading.errors import Conflict, Invalid, NotFound, OutOfScope
from reading.models import Reader, ReadingTask, Report, ReportStatus
from reading.qa.figures import period_of
from reading.qa.models import PeerReview
from reading.qa.peer_log import KINDS, LoggedChange, ReviewFacts, replay, scored
from reading.qa.peer_sampling import Wanted, choose_reviewer, draw, eligible, quota
from reading.qa.radpeer import QA_OUTCOMES, TO_QA_QUEUE, RateGroup, ScoreError, parse_score, rates
from reading.qa.service import month_range, name_lookup, zone_lookup
from reading.worklist.routing import ReaderFacts

STATES: Final = ("unassigned", "assigned", "scored")
COMMENT_LIMIT: Final = 5000


def _log(session: Session, kind: str, review: PeerReview, actor: str, **payload: Any) -> None:
    """A peer-review event of ``review``: the change log the rates are folded from (peer_log.py)."""
    append_change(
        session, kind, study_uid=review.study_uid, site_id=review.site_id, actor=actor, review_id=review.id, **payload
    )


@dataclass(frozen=True)
class SampleRun:
    """What one sampling run did."""

    month: str
    share: float
    seed: int  # recorded in every peer.sampled event: the draw can be repeated
    signed: int  # reports signed in the month (within scope)
    sampled: int  # drawn by this run
    assigned: int  # of those, given to a reviewer
    retried: int  # earlier samples without a reviewer that found one now

    def describe(self) -> str:
        return (
            f"{self.month}: {self.signed} signed report(s), {self.sampled} sampled at {self.share:.1%} per reader "
            f"(seed {self.seed}); {self.assigned} assigned, {self.sampled - self.assigned} without a reviewer; "
            f"{self.retried} earlier sample(s) assigned now"
        )


def sample_month(
    session: Session,
    *,
    month: str,
    share: float,
    now: datetime,
    seed: int | None = None,
    consortium_id: int | None = None,
    actor: str = "qa",
) -> SampleRun:
    """Top up each reader's quota of reviews for ``month`` (local to each consortium; all
    consortiums when ``consortium_id`` is None) and assign them, with the earlier samples still
    without a reviewer. Raises ``Invalid`` for a bad month or share. Two runs at once: the
    second fails on the unique report and can simply be run again."""
    start, end = month_range(month)
    if not 0 < share <= 1:
        raise Invalid(f"the share is a fraction in (0, 1], e.g. 0.03, not {share}")
    seed = secrets.randbits(32) if seed is None else seed
    rng = random.Random(seed)
    zones = zone_lookup(session)
    # UTC bounds wide enough for any zone (UTC-12 … UTC+14); the local month is checked per row.
    low = datetime.combine(start, time(), tzinfo=UTC) - timedelta(hours=14)
    high = datetime.combine(end, time(), tzinfo=UTC) + timedelta(hours=12)
    statement = (
        select(Report, ReadingTask)
        .join(ReadingTask, ReadingTask.id == Report.task_id)
        .where(
            Report.status == ReportStatus.FINAL,
            Report.signer_id.is_not(None),
            Report.signed_at >= low,
            Report.signed_at < high,
        )
    )
    if consortium_id is not None:
        statement = statement.where(ReadingTask.consortium_id == consortium_id)
    signed: dict[tuple[int, int], list[tuple[Report, ReadingTask]]] = defaultdict(list)
    for report, task in session.execute(statement):
        assert report.signed_at is not None and report.signer_id is not None
        if period_of(report.signed_at, "month", zones(task.consortium_id)) == month:
            signed[(task.consortium_id, report.signer_id)].append((report, task))
    earlier = select(PeerReview.consortium_id, PeerReview.reader_id, PeerReview.report_id).where(
        PeerReview.period == month
    )
    taken: Counter[tuple[int, int]] = Counter()
    taken_reports: set[int] = set()
    for consortium, reader_id, report_id in session.execute(earlier):
        taken[(consortium, reader_id)] += 1
        taken_reports.add(report_id)

    pool = _Reviewers(session)
    waiting = _waiting(session, consortium_id)
    drawn = []
    for key in sorted(signed):
        reports = {report.id: (report, task) for report, task in signed[key]}
        missing = quota(len(reports), share) - taken[key]
        for report_id in draw(set(reports) - taken_reports, missing, rng):
            report, task = reports[report_id]
            drawn.append(
                _record_sample(session, report, task, month=month, seed=seed, share=share, now=now, actor=actor)
            )
    # The reports with the fewest eligible reviewers first: a scarce reviewer (the one other
    # provincial expert) is not taken up by reports that others could review.
    wanted = {review.id: pool.wanted(session, review) for review in [*waiting, *drawn]}
    order = sorted([*waiting, *drawn], key=lambda r: (len(eligible(pool.facts, wanted[r.id])), r.id))
    fresh = {review.id for review in drawn}
    assigned = Counter(
        review.id in fresh
        for review in order
        if _assign(session, review, pool, wanted[review.id], now=now, actor=actor, first=review.id in fresh)
    )
    return SampleRun(
        month, share, seed, sum(len(v) for v in signed.values()), len(drawn), assigned[True], assigned[False]
    )


def _record_sample(
    session: Session,
    report: Report,
    task: ReadingTask,
    *,
    month: str,
    seed: int,
    share: float,
    now: datetime,
    actor: str,
) -> PeerReview:
    assert report.signed_at is not None and report.signer_id is not None
    review = PeerReview(
        report_id=report.id,
        task_id=task.id,
        study_uid=task.study_uid,
        consortium_id=task.consortium_id,
        site_id=task.site_id,
        reader_id=report.signer_id,
        modality=task.modality,
        body_part=task.body_part,
        period=month,
        report_signed_at=report.signed_at,
        sampled_at=now,
        state="unassigned",
    )
    session.add(review)
    session.flush()
    _log(
        session,
        events.PEER_SAMPLED,
        review,
        actor,
        report_id=report.id,
        task_id=task.id,
        consortium_id=task.consortium_id,
        reader_id=report.signer_id,
        modality=task.modality,
        body_part=task.body_part,
        period=month,
        report_signed_at=report.signed_at.isoformat(),
        seed=seed,
        share=share,
    )
    return review


class _Reviewers:
    """Every active reader as reviewer selection sees him, and the open reviews each holds
    (kept up to date as a run assigns)."""

    def __init__(self, session: Session) -> None:
        active_users = set(session.scalars(select(User.id).where(User.active.is_(True))))
        readers = session.scalars(select(Reader).where(Reader.active.is_(True), Reader.user_id.in_(active_users)))
        self.facts = [
            ReaderFacts(
                reader_id=r.id,
                tier=r.tier,
                modalities=frozenset(r.modalities),
                body_parts=frozenset(r.body_parts),
                site_ids=granted_site_ids(session, r.user_id),
                on_duty=False,  # peer review waits for no roster
            )
            for r in readers
        ]
        self.tiers = dict(session.execute(select(Reader.id, Reader.tier)).all())
        self.site_names = dict(session.execute(select(Site.id, Site.name)).all())
        held = session.execute(
            select(PeerReview.reviewer_id, func.count())
            .where(PeerReview.state == "assigned", PeerReview.reviewer_id.is_not(None))
            .group_by(PeerReview.reviewer_id)
        )
        self.open_reviews: Counter[int] = Counter({reviewer: n for reviewer, n in held if reviewer is not None})

    def wanted(self, session: Session, review: PeerReview) -> Wanted:
        author_id = session.scalar(select(Report.author_id).where(Report.id == review.report_id))
        return Wanted(
            not_readers=frozenset({review.reader_id, author_id or review.reader_id}),
            reviewed_tier=self.tiers.get(review.reader_id, ""),
            site_id=review.site_id,
            site_name=self.site_names.get(review.site_id, str(review.site_id)),
            modality=review.modality,
            body_part=review.body_part,
        )


def _waiting(session: Session, consortium_id: int | None) -> list[PeerReview]:
    statement = select(PeerReview).where(PeerReview.state == "unassigned").order_by(PeerReview.id)
    if consortium_id is not None:
        statement = statement.where(PeerReview.consortium_id == consortium_id)
    return list(session.scalars(statement))


def _assign(
    session: Session,
    review: PeerReview,
    pool: _Reviewers,
    wanted: Wanted,
    *,
    now: datetime,
    actor: str,
    first: bool = False,
) -> bool:
    """Give ``review`` to its reviewer; without one, record why (an event only when the reason
    is new, so a daily retry does not repeat itself). Returns whether it was assigned."""
    choice = choose_reviewer(pool.facts, pool.open_reviews, wanted)
    if choice.reviewer_id is None:
        if first or review.unassigned_reason != choice.reason:
            review.unassigned_reason = choice.reason
            _log(
                session,
                events.PEER_UNASSIGNED,
                review,
                actor,
                reason=choice.reason,
            )
        return False
    review.state, review.reviewer_id, review.assigned_at = "assigned", choice.reviewer_id, now
    review.unassigned_reason = None
    pool.open_reviews[choice.reviewer_id] += 1
    _log(
        session,
        events.PEER_ASSIGNED,
        review,
        actor,
        reviewer_id=choice.reviewer_id,
        reason=choice.reason,
    )
    return True


# ---------------------------------------------------------------- the reviewer


def assignments_of(session: Session, reviewer: Reader, *, states: Sequence[str] = ("assigned",)) -> list[PeerReview]:
    """The reviews given to ``reviewer`` in ``states``, oldest assignment first."""
    unknown = [s for s in states if s not in ("assigned", "scored")]
    if unknown:
        raise Invalid(f"a reviewer's assignments are assigned or scored, not {', '.join(unknown)}")
    return list(
        session.scalars(
            select(PeerReview)
            .where(PeerReview.reviewer_id == reviewer.id, PeerReview.state.in_(list(states)))
            .order_by(PeerReview.assigned_at, PeerReview.id)
        )
    )


def assignment(session: Session, reviewer: Reader, review_id: int, *, lock: bool = False) -> PeerReview:
    """One review given to ``reviewer``: ``NotFound`` when there is none, ``OutOfScope`` when it
    is someone else's."""
    statement = select(PeerReview).where(PeerReview.id == review_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    review = session.scalar(statement)
    if review is None:
        raise NotFound(f"no peer review {review_id}")
    if review.reviewer_id != reviewer.id:
        raise OutOfScope(f"peer review {review_id} is assigned to another reader")
    return review


def reviewer_view(session: Session, review: PeerReview) -> dict[str, Any]:
    """The assignment as the reviewer sees it: the study and the report's text as signed —
    blinded: nothing names or identifies its reader (no author, signer, task, report id or
    signing time)."""
    report = session.get_one(Report, review.report_id)
    study = session.scalar(select(Study).where(Study.study_uid == review.study_uid))
    return {
        "id": review.id,
        "state": review.state,
        "assigned_at": _iso(review.assigned_at),
        "study_uid": review.study_uid,
        "site": session.get_one(Site, review.site_id).name,
        "modality": review.modality,
        "body_part": review.body_part,
        "study": None
        if study is None
        else {
            "patient_name": study.patient_name,
            "patient_id": study.patient_id,
            "accession_number": study.accession_number,
            "study_date": study.study_date,
            "study_description": study.study_description,
        },
        "report": {
            "template_id": report.template_id,
            "fields": report.fields,
            "findings": report.findings,
            "impression": report.impression,
            "critical": report.critical,
        },
        "score": review.score,
        "comment": review.comment,
        "scored_at": _iso(review.scored_at),
    }


def score_review(
    session: Session, reviewer: Reader, review_id: int, *, score: str, comment: str | None, now: datetime
) -> PeerReview:
    """Record the reviewer's RADPEER score; a 3b opens a case in the QA review queue. Raises
    ``NotFound``, ``OutOfScope`` (someone else's review), ``Conflict`` (scored already) and
    ``Invalid`` (not a score; a discrepancy without a comment saying what was missed)."""
    review = assignment(session, reviewer, review_id, lock=True)
    if review.state == "scored":
        raise Conflict(f"peer review {review_id} was scored {review.score} already")
    try:
        value = parse_score(score)
    except ScoreError as exc:
        raise Invalid(str(exc)) from None
    text = (comment or "").strip()
    if value.value != "1" and not text:
        raise Invalid(f"a score of {value.value} needs a comment saying what the discrepancy is")
    if len(text) > COMMENT_LIMIT:
        raise Invalid(f"a comment is limited to {COMMENT_LIMIT} characters")
    review.state, review.score, review.comment, review.scored_at = "scored", value.value, text or None, now
    actor = f"reader:{reviewer.id}"
    _log(
        session,
        events.PEER_SCORED,
        review,
        actor,
        reviewer_id=reviewer.id,
        score=value.value,
        comment=review.comment,
    )
    if value in TO_QA_QUEUE:
        review.qa_state = "open"
        _log(
            session,
            events.PEER_QA_OPENED,
            review,
            actor,
            score=value.value,
        )
    return review


# ---------------------------------------------------------------- QA


def qa_review(session: Session, consortium_id: int | None, review_id: int) -> PeerReview:
    """A review within the caller's consortium (any when None); another's is not found."""
    review = session.get(PeerReview, review_id)
    if review is None or (consortium_id is not None and review.consortium_id != consortium_id):
        raise NotFound(f"no peer review {review_id}")
    return review


def reviews_in_scope(
    session: Session,
    consortium_id: int | None,
    *,
    states: Sequence[str] = (),
    queue: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[PeerReview]:
    """Reviews of reports signed from ``start`` up to (not including) ``end`` (local dates),
    optionally in ``states`` or — ``queue`` ``open`` / ``closed`` / ``any`` — in the QA review
    queue. Raises ``Invalid`` for an unknown state."""
    unknown = [s for s in states if s not in STATES]
    if unknown or queue not in (None, "open", "closed", "any"):
        raise Invalid(f"state is one of {', '.join(STATES)}; queue is open, closed or any")
    statement = select(PeerReview).order_by(PeerReview.id)
    if consortium_id is not None:
        statement = statement.where(PeerReview.consortium_id == consortium_id)
    if states:
        statement = statement.where(PeerReview.state.in_(list(states)))
    if queue == "any":
        statement = statement.where(PeerReview.qa_state.is_not(None))
    elif queue is not None:
        statement = statement.where(PeerReview.qa_state == queue)
    zones = zone_lookup(session)
    return [
        r
        for r in session.scalars(statement)
        if _within(r.report_signed_at.astimezone(zones(r.consortium_id)).date(), start, end)
    ]


def qa_view(review: PeerReview, names: Any) -> dict[str, Any]:
    """The review as QA sees it: both readers named."""
    return {
        "id": review.id,
        "period": review.period,
        "state": review.state,
        "site": names("site", review.site_id),
        "reader": names("reader", review.reader_id),
        "reviewer": names("reader", review.reviewer_id) if review.reviewer_id is not None else None,
        "modality": review.modality,
        "body_part": review.body_part,
        "study_uid": review.study_uid,
        "task_id": review.task_id,
        "report_id": review.report_id,
        "report_signed_at": review.report_signed_at.isoformat(),
        "sampled_at": review.sampled_at.isoformat(),
        "unassigned_reason": review.unassigned_reason,
        "assigned_at": _iso(review.assigned_at),
        "score": review.score,
        "comment": review.comment,
        "scored_at": _iso(review.scored_at),
        "qa_state": review.qa_state,
        "qa_outcome": review.qa_outcome,
        "qa_comment": review.qa_comment,
        "qa_closed_by": review.qa_closed_by,
        "qa_closed_at": _iso(review.qa_closed_at),
    }


def close_case(
    session: Session,
    consortium_id: int | None,
    review_id: int,
    *,
    outcome: str,
    comment: str,
    by: str,
    now: datetime,
) -> PeerReview:
    """QA closes a case of the review queue with an outcome (``QA_OUTCOMES``) and a comment
    saying what was done. Raises ``NotFound`` (none in the caller's consortium), ``Conflict``
    (not in the queue, or closed already) and ``Invalid`` (unknown outcome, no comment)."""
    review = qa_review(session, consortium_id, review_id)
    if review.qa_state is None:
        raise Conflict(f"peer review {review_id} is not in the QA review queue (only 3b scores are)")
    if review.qa_state == "closed":
        raise Conflict(f"the QA case of peer review {review_id} was closed already ({review.qa_outcome})")
    if outcome not in QA_OUTCOMES:
        raise Invalid(f"the outcome is one of {', '.join(QA_OUTCOMES)}, not {outcome!r}")
    text = comment.strip()
    if not text or len(text) > COMMENT_LIMIT:
        raise Invalid(f"closing a case needs a comment (up to {COMMENT_LIMIT} characters) saying what was done")
    review.qa_state, review.qa_outcome, review.qa_comment = "closed", outcome, text
    review.qa_closed_by, review.qa_closed_at = by, now
    _log(
        session,
        events.PEER_QA_CLOSED,
        review,
        by,
        outcome=outcome,
        comment=text,
    )
    return review


def logged_reviews(session: Session) -> dict[int, ReviewFacts]:
    """Every peer review as the change log tells it."""
    rows = session.execute(
        select(Change.seq, Change.kind, Change.at, Change.site_id, Change.actor, Change.payload)
        .where(Change.kind.in_(KINDS))
        .order_by(Change.seq)
    )
    return replay(LoggedChange(seq, kind, at, site, who, payload or {}) for seq, kind, at, site, who, payload in rows)


def rate_groups(
    session: Session,
    consortium_id: int | None,
    *,
    group_by: Sequence[str],
    start: date | None = None,
    end: date | None = None,
) -> list[RateGroup]:
    """Discrepancy rates with 95 % Wilson intervals per group, over the reviews of reports
    signed from ``start`` up to ``end`` (local dates), folded from the change log. Raises
    ``Invalid`` for an unknown grouping."""
    if not group_by:
        raise Invalid("group_by names at least one dimension")
    zones = zone_lookup(session)
    kept = [
        r
        for r in logged_reviews(session).values()
        if (consortium_id is None or r.consortium_id == consortium_id)
        and _within(r.report_signed_at.astimezone(zones(r.consortium_id)).date(), start, end)
    ]
    try:
        return rates(scored(kept), group_by=group_by, names=name_lookup(session))
    except ScoreError as exc:
        raise Invalid(str(exc)) from None


def _within(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or day >= start) and (end is None or day < end)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
