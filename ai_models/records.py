"""The AI tables of the index (migration 0008): what each model found per study, and what
readers said about it. They live on ``pacs``'s declarative base, so one Alembic history
covers the whole index."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base, BigId
from pacs.index.types import JSONDocument, UTCDateTime, utcnow


class AiFinding(Base):
    """One label of one model for one study (DESIGN.md: AI finding); negatives are kept too,
    so agreement can be measured on what the model ruled out."""

    __tablename__ = "ai_finding"
    __table_args__ = (Index("ix_ai_finding_model", "model", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float | None] = mapped_column(Float)
    positive: Mapped[bool] = mapped_column(Boolean)
    # [{sop_instance_uid, frame, box}] — where a reader should look.
    location: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    suggested_triage: Mapped[str | None] = mapped_column(String(16))
    validated: Mapped[bool] = mapped_column(Boolean, default=False)  # the model's, when it ran
    explanation: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AiFeedback(Base):
    """A reader's agree/disagree with one finding: the data behind ``yunying ai monitor``."""

    __tablename__ = "ai_feedback"
    # One opinion per reader and finding: a reader who changes his mind replaces it.
    __table_args__ = (UniqueConstraint("finding_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(BigId, ForeignKey("ai_finding.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    agree: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
