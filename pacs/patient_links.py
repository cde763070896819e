"""A reader's word on a probable match: are two patient rows of a consortium that share only
name, birth date and sex (pacs/patients.py) the same person?

One ``patient_link`` row per pair of patient rows, the lower id first. ``confirmed`` lists the
other row's studies as priors with basis ``confirmed``; ``rejected`` lists them no more, for any
reader of the consortium. A later decision replaces the row; each decision is a change
(``patient_link.confirmed`` / ``patient_link.rejected``, with the decision it replaced) and the
API audits it, so the history stays. ID card numbers outrank a reader: the decision only applies
to a pair that still matches probably (two rows with different card numbers never match, two with
the same always do). QA staff and admins list the decisions of their consortium and may withdraw
one (``patient_link.withdrawn``): the pair is probable again, as before anyone decided — the way
back from a rejection, which hides the prior from every reader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from pacs import events
from pacs.index.db import append_change
from pacs.index.models import Patient, PatientLink, Site


class LinkDecision(StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


REASON_MAX = 500


@dataclass(frozen=True)
class Decided:
    """What a decision changed: the pair and the decision it replaced (``None``: the first)."""

    patient_low: int
    patient_high: int
    decision: LinkDecision
    previous: LinkDecision | None
    previous_by: str | None


def link_decisions(session: Session, own: int, others: Iterable[int]) -> dict[int, tuple[LinkDecision, str]]:
    """The decisions on the pairs (``own``, each of ``others``): other patient id → (decision,
    who decided). One indexed query; nothing asked when ``others`` is empty."""
    wanted = sorted(set(others) - {own})
    if not wanted:
        return {}
    lower = [other for other in wanted if other < own]
    higher = [other for other in wanted if other > own]
    clauses = []
    if higher:
        clauses.append(and_(PatientLink.patient_low == own, PatientLink.patient_high.in_(higher)))
    if lower:
        clauses.append(and_(PatientLink.patient_high == own, PatientLink.patient_low.in_(lower)))
    rows = session.execute(
        select(PatientLink.patient_low, PatientLink.patient_high, PatientLink.decision, PatientLink.decided_by).where(
            or_(*clauses)
        )
    ).all()
    return {(high if low == own else low): (LinkDecision(decision), by) for low, high, decision, by in rows}


def decide_link(
    session: Session,
    first: Patient,
    second: Patient,
    decision: LinkDecision,
    *,
    user_id: int | None,
    username: str,
    reason: str | None,
    now: datetime,
    study_uid: str | None = None,
    **details: object,
) -> Decided:
    """Record ``username``'s decision on the pair, replacing an earlier one, and its change.
    Raises ``ValueError`` for one row twice or two rows of different consortiums (the tenancy
    boundary: they can never be linked). The caller checks that the pair matches probably."""
    if first.id == second.id:
        raise ValueError("a patient row cannot be linked with itself")
    consortiums = set(
        session.scalars(select(Site.consortium_id).where(Site.id.in_({first.site_id, second.site_id}))).all()
    )
    if len(consortiums) != 1:
        raise ValueError("patients of different consortiums are never linked")
    low, high = sorted((first.id, second.id))
    existing = select(PatientLink).where(PatientLink.patient_low == low, PatientLink.patient_high == high)
    link = session.scalar(existing.with_for_update())
    previous = (LinkDecision(link.decision), link.decided_by) if link is not None else (None, None)
    if link is None:
        try:
            with session.begin_nested():  # two readers deciding the first time at once: one inserts
                link = PatientLink(
                    consortium_id=consortiums.pop(),
                    patient_low=low,
                    patient_high=high,
                    decision=decision.value,
                    decided_by=username,
                    decided_at=now,
                )
                session.add(link)
        except IntegrityError:
            link = session.scalars(existing.with_for_update()).one()
            previous = (LinkDecision(link.decision), link.decided_by)
    link.decision = decision.value
    link.decided_by_id = user_id
    link.decided_by = username
    link.decided_at = now
    link.reason = reason
    session.flush()
    kind = events.PATIENT_LINK_CONFIRMED if decision is LinkDecision.CONFIRMED else events.PATIENT_LINK_REJECTED
    append_change(
        session,
        kind,
        study_uid=study_uid,
        site_id=second.site_id,
        actor=username,
        patients=[low, high],
        previous=previous[0].value if previous[0] else None,
        previous_by=previous[1],
        reason=reason,
        **details,
    )
    return Decided(low, high, decision, previous[0], previous[1])


def list_links(
    session: Session, consortium_id: int | None, decision: LinkDecision | None = None, *, limit: int = 200
) -> list[tuple[PatientLink, Patient, Patient]]:
    """The decisions of a consortium (``None``: every consortium), newest first, with both rows."""
    low, high = aliased(Patient), aliased(Patient)
    statement = (
        select(PatientLink, low, high)
        .join(low, low.id == PatientLink.patient_low)
        .join(high, high.id == PatientLink.patient_high)
        .order_by(PatientLink.decided_at.desc(), PatientLink.id.desc())
        .limit(limit)
    )
    if consortium_id is not None:
        statement = statement.where(PatientLink.consortium_id == consortium_id)
    if decision is not None:
        statement = statement.where(PatientLink.decision == decision.value)
    return [(link, first, second) for link, first, second in session.execute(statement).all()]


def withdraw_link(session: Session, link: PatientLink, *, username: str, reason: str | None) -> None:
    """Undo a decision: the row goes, its change keeps what it was and who had decided it."""
    second = session.get_one(Patient, link.patient_high)
    append_change(
        session,
        events.PATIENT_LINK_WITHDRAWN,
        site_id=second.site_id,
        actor=username,
        patients=[link.patient_low, link.patient_high],
        previous=link.decision,
        previous_by=link.decided_by,
        reason=reason,
    )
    session.delete(link)
    session.flush()
