"""The derived turnaround table: one row per reading task with the time of each milestone,
taken from the change log (``reading/qa/timeline.py``). Dropping every row and recomputing
gives the same table; ``qa_cursor`` remembers the last change folded in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base, BigId
from pacs.index.types import UTCDateTime


class QaTurnaround(Base):
    """One reading task's passage, milestone by milestone (UTC). ``None``: not reached."""

    __tablename__ = "qa_turnaround"
    __table_args__ = (
        # A date range of a consortium (reading/qa/service.py turns local dates into UTC bounds).
        Index("ix_qa_turnaround_arrived", "consortium_id", "arrived_at"),
        Index("ix_qa_turnaround_study", "study_uid"),
    )

    task_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    study_uid: Mapped[str] = mapped_column(String(64))
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    site_tier: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(16))  # the reading tier of the task
    priority: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    reader_id: Mapped[int | None] = mapped_column(Integer)  # who signed (or escalated)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ai_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    preliminary_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # or escalated
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the study arrived: received_at, or queued_at for a task with no study.received (the
    # date QA filters and groups by) — derived from the two above, kept for the index.
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QaCursor(Base):
    """The last change (``changes.seq``) folded into ``qa_turnaround``: one row, id 1."""

    __tablename__ = "qa_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)
