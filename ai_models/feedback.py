"""Readers' agreement with AI findings: one agree/disagree (with an optional comment) per
reader and finding, and how often readers agreed, per model and site — a model whose agreement
drops at one site (a new scanner, another protocol) shows it here before anyone trusts it less."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ai_models import events
from ai_models.records import AiFeedback, AiFinding
from pacs.index.db import append_change
from pacs.index.models import Site, User
from pacs.index.types import utcnow


class FeedbackRefused(ValueError):
    """The finding or the reader does not exist."""


def record_feedback(
    session: Session,
    finding_id: int,
    user_id: int,
    *,
    agree: bool,
    comment: str | None = None,
    now: datetime | None = None,
) -> AiFeedback:
    """Record (or replace) a reader's opinion of one finding, with an ``ai.feedback`` change.
    Raises ``FeedbackRefused`` for an unknown finding or user."""
    now = now or utcnow()
    finding = session.get(AiFinding, finding_id)
    if finding is None:
        raise FeedbackRefused(f"no AI finding {finding_id}")
    if session.get(User, user_id) is None:
        raise FeedbackRefused(f"no user {user_id}")
    feedback = session.scalar(
        select(AiFeedback).where(AiFeedback.finding_id == finding_id, AiFeedback.user_id == user_id)
    )
    if feedback is None:
        feedback = AiFeedback(finding_id=finding_id, user_id=user_id, agree=agree, comment=comment, at=now)
        session.add(feedback)
    else:
        feedback.agree, feedback.comment, feedback.at = agree, comment, now
    session.flush()
    append_change(
        session,
        events.AI_FEEDBACK,
        study_uid=finding.study_uid,
        site_id=finding.site_id,
        actor=f"user:{user_id}",
        finding_id=finding_id,
        model=finding.model,
        version=finding.version,
        label=finding.label,
        agree=agree,
    )
    return feedback


@dataclass(frozen=True)
class Agreement:
    model: str
    version: str
    site: str
    findings: int  # findings the model made at the site
    reviewed: int  # of those, with at least one reader's opinion
    agreed: int  # opinions that agreed
    opinions: int

    @property
    def rate(self) -> float | None:
        return self.agreed / self.opinions if self.opinions else None


def agreement(session: Session, *, since: datetime | None = None) -> list[Agreement]:
    """Per model version and site: findings made, reviewed, and the share of readers' opinions
    that agreed (``since``: findings made from then on)."""
    opinions = (
        select(
            AiFeedback.finding_id,
            func.count().label("opinions"),
            func.sum(case((AiFeedback.agree, 1), else_=0)).label("agreed"),
        )
        .group_by(AiFeedback.finding_id)
        .subquery()
    )
    statement = (
        select(
            AiFinding.model,
            AiFinding.version,
            func.coalesce(Site.name, "—"),
            func.count(AiFinding.id),
            func.count(opinions.c.finding_id),
            func.coalesce(func.sum(opinions.c.agreed), 0),
            func.coalesce(func.sum(opinions.c.opinions), 0),
        )
        .outerjoin(opinions, opinions.c.finding_id == AiFinding.id)
        .outerjoin(Site, Site.id == AiFinding.site_id)
        .group_by(AiFinding.model, AiFinding.version, Site.name)
        .order_by(AiFinding.model, AiFinding.version, Site.name)
    )
    if since is not None:
        statement = statement.where(AiFinding.created_at >= since)
    return [Agreement(*(row[:3]), *(int(v) for v in row[3:])) for row in session.execute(statement)]
