"""Tables of the reading workflow: readers and their rosters, routing rules and SLAs, reading
tasks, reports, critical results and deliveries. They share the index's metadata and its one
chain of Alembic migrations (``pacs/index/migrations``); ``reading`` owns their meaning."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base, BigId
from pacs.index.types import JSONDocument, UTCDateTime, utcnow


class ReadingTier(StrEnum):
    COUNTY = "county"
    PROVINCIAL = "provincial"


class Priority(StrEnum):
    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"


# Sort key: stat first. Stored beside the priority so the worklist sorts on an index.
PRIORITY_RANK: Final = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class TaskState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    PRELIMINARY = "preliminary"  # a preliminary report is saved; the claim is still held
    SIGNED = "signed"
    ESCALATED = "escalated"  # handed to the provincial tier (this task ends here)
    AMENDED = "amended"  # an addendum after signing


class ReportStatus(StrEnum):
    DRAFT = "draft"  # being written; never leaves the centre
    PRELIMINARY = "preliminary"  # 初步报告: saved for review or escalation
    FINAL = "final"  # signed
    AMENDED = "amended"  # a signed addendum: a new version of the report


class DeliveryState(StrEnum):
    PENDING = "pending"  # to be sent (or retried) to the site's return destination
    AWAITING_PULL = "awaiting_pull"  # the site has no reachable return destination: it fetches over the API
    DELIVERED = "delivered"


class CriticalState(StrEnum):
    OPEN = "open"  # the site was notified and has not acknowledged yet
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"  # not acknowledged in time: the centre's duty officer was alerted


class Reader(Base):
    """A radiologist: a ``reader`` user of ``pacs`` identity, with a reading tier and the
    modalities / body parts he is credentialed for. The sites he reads for are his grants
    (``pacs`` ``user_grant``), so image access and the worklist agree."""

    __tablename__ = "reader"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), unique=True)
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"), index=True)  # home: roster time zone
    tier: Mapped[str] = mapped_column(String(16))
    modalities: Mapped[list[str]] = mapped_column(JSONDocument, default=list)  # e.g. ["CT", "DX"]
    body_parts: Mapped[list[str]] = mapped_column(JSONDocument, default=list)  # empty: every body part
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RosterWindow(Base):
    """One on-duty window of a reader, in his consortium's time zone: weekly (``weekday``
    0 = Monday, or every day when NULL) or on one date. ``end`` before ``start`` runs past
    midnight (a night shift 20:00–08:00)."""

    __tablename__ = "roster_window"

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    weekday: Mapped[int | None] = mapped_column(Integer)
    on_date: Mapped[str | None] = mapped_column(String(10))  # YYYY-MM-DD
    start: Mapped[str] = mapped_column(String(5))  # HH:MM
    end: Mapped[str] = mapped_column(String(5))


class ReadingGroup(Base):
    """A named set of readers of one tier (e.g. the county's CT group); routing rules may send
    tasks to a group instead of the whole tier."""

    __tablename__ = "reading_group"
    __table_args__ = (UniqueConstraint("consortium_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"))
    name: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(16))


class ReadingGroupMember(Base):
    __tablename__ = "reading_group_member"

    group_id: Mapped[int] = mapped_column(ForeignKey("reading_group.id"), primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), primary_key=True)


class RoutingRule(Base):
    """An administrator's rule, tried in ``position`` order before the default routing: when
    every given match field matches, it sets the tier and/or group and/or a minimum priority."""

    __tablename__ = "routing_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=100)
    name: Mapped[str] = mapped_column(String(100))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    site_tier: Mapped[str | None] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    to_tier: Mapped[str | None] = mapped_column(String(16))
    to_group_id: Mapped[int | None] = mapped_column(ForeignKey("reading_group.id"))
    min_priority: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SlaRule(Base):
    """Minutes allowed from a study's readiness to a signed report, per priority, optionally per
    modality (X-ray routine: 2 h). Without a row the defaults of ``reading/worklist/sla.py`` apply."""

    __tablename__ = "sla_rule"
    __table_args__ = (UniqueConstraint("consortium_id", "priority", "modality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"))
    priority: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16))
    minutes: Mapped[int] = mapped_column(Integer)


class ReadingRequest(Base):
    """What a site asks of the centre for one of its studies: a priority, a second opinion
    (a county site asking the provincial tier), clinical information for the reader."""

    __tablename__ = "reading_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    priority: Mapped[str | None] = mapped_column(String(16))
    second_opinion: Mapped[bool] = mapped_column(Boolean, default=False)
    clinical_info: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReadingTask(Base):
    """One study's passage through one tier's worklist. Its ``state`` is written only by
    ``reading.worklist.transitions.transition``."""

    __tablename__ = "reading_task"
    __table_args__ = (
        # Counting a state's tasks (capped) and the sweeper's scans by state.
        Index("ix_task_worklist", "state", "tier", "consortium_id", "priority_rank", "deadline_at"),
        # The worklist page: open tasks of a tier in worklist order, read in index order until a
        # page matches (bench/worklist.py: a sort of every open task cost ~130 ms at 100,000).
        Index(
            "ix_task_open_order",
            "tier",
            "priority_rank",
            "deadline_at",
            "id",
            postgresql_where=text("state IN ('claimed', 'preliminary', 'queued')"),
            sqlite_where=text("state IN ('claimed', 'preliminary', 'queued')"),
        ),
        Index("ix_task_lease", "state", "lease_expires_at"),
        Index("ix_task_reader", "claimed_by", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("reading_group.id"))
    state: Mapped[str] = mapped_column(String(16), default=TaskState.QUEUED)
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(Integer)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    route_reason: Mapped[str] = mapped_column(Text)  # why this tier, group and priority
    ai_flags: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("reader.id"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_from_id: Mapped[int | None] = mapped_column(ForeignKey("reading_task.id"))
    escalation_reason: Mapped[str | None] = mapped_column(Text)
    # New images arrived after the task was claimed or signed (the reader must look again).
    new_images: Mapped[bool] = mapped_column(Boolean, default=False)
    images_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the study's last_received_at when routed
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Base):
    """One version of a study's report. A draft or preliminary version is edited in place; a
    signed one is never changed again: an addendum is a new row (``version`` + 1) that
    ``amends_id`` the last."""

    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("task_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("reading_task.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=ReportStatus.DRAFT)
    template_id: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    referral: Mapped[str | None] = mapped_column(Text)
    addendum: Mapped[str | None] = mapped_column(Text)  # the text this version adds, for AMENDED
    author_id: Mapped[int] = mapped_column(ForeignKey("reader.id"))
    signer_id: Mapped[int | None] = mapped_column(ForeignKey("reader.id"))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    amends_id: Mapped[int | None] = mapped_column(ForeignKey("report.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CriticalResult(Base):
    """危急值: a signed critical report, the site's acknowledgement and its deadline."""

    __tablename__ = "critical_result"
    __table_args__ = (Index("ix_critical_state_due", "state", "ack_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=CriticalState.OPEN)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ack_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the notifiers were told of the raise and of the escalation (reading/notify.py).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CriticalCommunication(Base):
    """Who at the site was told of a critical result, how and when (recorded by the reader)."""

    __tablename__ = "critical_communication"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), index=True)
    told: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))
    # A signed version's objects never change (their UIDs stay): a call recorded after signing
    # appears in the next version (an addendum), not in the one already delivered.
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """A signed report version on its way back to the originating site. Inserted in the signing
    transaction; taken by the delivery worker with a lease; delivered only when every object
    got Success (or, for a site that pulls, when the site acknowledges)."""

    __tablename__ = "delivery"
    __table_args__ = (
        Index("ix_delivery_take", "state", "next_attempt_at"),
        CheckConstraint("attempts >= 0", name="ck_delivery_attempts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    # The return destination as it was when the report was signed.
    ae_title: Mapped[str | None] = mapped_column(String(16))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    worker: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | failed
    error: Mapped[str | None] = mapped_column(Text)
    statuses: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)  # SOP Instance UID → status


class SavedView(Base):
    """A reader's worklist filters saved under a name (reading/worklist/saved_views.py): kept
    in the index, not the browser, so they follow him to another workstation. Only their owner
    sees them."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
