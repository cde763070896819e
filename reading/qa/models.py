"""The derived turnaround table: one row per reading task with the time of each milestone,
taken from the change log (``reading/qa/timeline.py``). Dropping every row and recomputing
gives the same table; ``qa_cursor`` remembers the last change folded in. ``peer_review``: the
peer-review (RADPEER) workflow, one row per sampled report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
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


class PeerReview(Base):
    """One signed report drawn for a blinded second reading (RADPEER), and its way through
    ``unassigned | assigned → scored``; a 3b score also opens a case in the QA review queue
    (``qa_state`` open → closed). A report is sampled at most once (``report_id`` is unique).
    Every change is also an event (``peer.*``): the rates are folded from those."""

    __tablename__ = "peer_review"
    __table_args__ = (
        Index("ix_peer_review_reviewer", "reviewer_id", "state"),
        Index("ix_peer_review_period", "consortium_id", "period", "reader_id"),
        Index("ix_peer_review_qa", "qa_state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("reading_task.id"))
    study_uid: Mapped[str] = mapped_column(String(64))
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"))  # whose report: its signer
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))  # the local month of signing, 2026-10: the quota's
    report_signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))  # unassigned | assigned | scored
    unassigned_reason: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("reader.id"))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[str | None] = mapped_column(String(2))  # 1, 2a, 2b, 3a, 3b
    comment: Mapped[str | None] = mapped_column(Text)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    qa_state: Mapped[str | None] = mapped_column(String(16))  # open | closed: the QA review queue (3b)
    qa_outcome: Mapped[str | None] = mapped_column(String(32))
    qa_comment: Mapped[str | None] = mapped_column(Text)
    qa_closed_by: Mapped[str | None] = mapped_column(String(64))
    qa_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
