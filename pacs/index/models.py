"""SQLAlchemy 2.0 models of the index. Every schema change goes through an Alembic migration."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship

from pacs.index.types import JSONDocument, JSONText, UTCDateTime, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Tier(StrEnum):
    VILLAGE = "village"
    TOWNSHIP = "township"
    COUNTY = "county"
    PROVINCIAL = "provincial"


class StudyState(StrEnum):
    RECEIVING = "receiving"
    STABLE = "stable"


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Consortium(Base):
    __tablename__ = "consortium"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    sites: Mapped[list[Site]] = relationship(back_populates="consortium")


class Site(Base):
    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("consortium_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"))
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16))
    contact: Mapped[str | None] = mapped_column(String(200))
    # Where signed reports go back to (the site's own PACS or workstation).
    return_ae_title: Mapped[str | None] = mapped_column(String(16))
    return_host: Mapped[str | None] = mapped_column(String(255))
    return_port: Mapped[int | None] = mapped_column(Integer)
    # Also send the report rendered as an image: for small PACS that show neither SR nor PDF.
    return_report_image: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The site sends through a Yunying edge (pacs/edge): its studies are held back from
    # *stable* until the edge's manifest of the study is satisfied (pacs/completeness.py).
    held_for_manifest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    consortium: Mapped[Consortium] = relationship(back_populates="sites")
    aes: Mapped[list[SiteAE]] = relationship(back_populates="site")


class SiteAE(Base):
    """A calling AE title a site's modality uses, and the address it may call from."""

    __tablename__ = "site_ae"
    __table_args__ = (UniqueConstraint("ae_title", "allowed_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    ae_title: Mapped[str] = mapped_column(String(16), index=True)
    allowed_address: Mapped[str] = mapped_column(String(64))  # an IP address or a CIDR network
    # Many Chinese modalities send GBK text without (0008,0005): decode with this when absent.
    assumed_charset: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    site: Mapped[Site] = relationship(back_populates="aes")


class DicomNode(Base):
    """A DICOM peer outside the consortium's modalities — a workstation, a county PACS, a
    viewer — that may query and retrieve (C-FIND/C-MOVE/C-GET) and may be a C-MOVE
    destination. It sees one site's studies or a whole consortium's, never more."""

    __tablename__ = "dicom_node"
    __table_args__ = (
        # Exactly one scope: a site or a consortium.
        CheckConstraint("(site_id IS NULL) <> (consortium_id IS NULL)", name="ck_dicom_node_one_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: a C-MOVE names its destination by AE title alone (PS3.4 C.4.2.1.4.1).
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    allowed_address: Mapped[str] = mapped_column(String(64))  # where it may call from: an IP or a CIDR network
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), index=True)
    consortium_id: Mapped[int | None] = mapped_column(ForeignKey("consortium.id"), index=True)
    may_query: Mapped[bool] = mapped_column(default=True)
    may_retrieve: Mapped[bool] = mapped_column(default=True)
    is_move_destination: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role(StrEnum):
    ADMIN = "admin"  # administers a consortium (or, without one, the whole installation)
    READER = "reader"  # a radiologist: sees the sites he reads for (grants) and break-glass openings
    SITE = "site"  # a site's staff or its systems: that site's studies only
    QA = "qa"  # quality and audit staff of a consortium


class User(Base):
    """A person or a service account (a site's RIS, a workstation) that calls the API."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    is_service: Mapped[bool] = mapped_column(default=False)
    consortium_id: Mapped[int | None] = mapped_column(ForeignKey("consortium.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # An argon2id hash (PHC string) for browser login; none: the user cannot log in with a
    # password (service accounts never have one: they use tokens).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A browser session (pacs/identity/sessions.py): only the SHA-256 of its 256-bit id is
    kept. It dies when idle for too long, at its absolute expiry, at logout (revoked) or when
    its user is deactivated."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(64))  # the address that logged in


class UserGrant(Base):
    """A site or a whole consortium whose studies a user may see beyond his own site or
    consortium: the sites and consortiums a reader reads for (a provincial expert serves
    several counties)."""

    __tablename__ = "user_grant"
    __table_args__ = (
        CheckConstraint("(site_id IS NULL) <> (consortium_id IS NULL)", name="ck_user_grant_one_scope"),
        UniqueConstraint("user_id", "site_id", "consortium_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    consortium_id: Mapped[int | None] = mapped_column(ForeignKey("consortium.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BreakGlass(Base):
    """Emergency access (break-glass) of one user to one study beyond his scope, with the
    reason he gave; it expires. Every use is also in the access audit."""

    __tablename__ = "break_glass"
    __table_args__ = (Index("ix_break_glass_user_expires", "user_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    study_uid: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept (the token itself is shown once, at creation)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to recognise it in lists
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthFailure(Base):
    """One failed authentication of a key (``addr:<address>``, ``login:<name>``) within the
    throttle's window, shared by every web process (pacs/identity/throttle.py)."""

    __tablename__ = "auth_failure"
    __table_args__ = (Index("ix_auth_failure_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AccessRecord(Base):
    """One access to patient data, in the spirit of IHE ATNA: who, as what, did what to which
    study or patient, when, from where, with what outcome (pacs/audit.py)."""

    __tablename__ = "access_record"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))  # e.g. search, retrieve, metadata, render, store
    study_uid: Mapped[str | None] = mapped_column(String(128), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    site_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(64))  # the caller's address
    outcome: Mapped[str] = mapped_column(String(16))  # success, denied, not-found, error
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    # The hash chain (pacs/audit_chain.py): set once by the sealer, never by the writer.
    chain_seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), index=True, unique=True
    )
    digest: Mapped[str | None] = mapped_column(String(64))


class AuditSeal(Base):
    """A checkpoint of the access-record chain: after each sealing round (``seal``) the last
    sealed record's place and digest — so cutting records off the end is detected — and, when
    retention pruned the oldest records (``prune``), where the surviving chain starts."""

    __tablename__ = "audit_seal"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # seal | prune
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    chain_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    digest: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(Integer)  # sealed (or pruned) in this round
    key_id: Mapped[str] = mapped_column(String(16))  # which key sealed it (a fingerprint, not the key)


class Patient(Base):
    """A patient as one site identifies him: patient IDs are only unique within their issuer."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("site_id", "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    patient_id: Mapped[str] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(320))
    birth_date: Mapped[str | None] = mapped_column(String(8))
    sex: Mapped[str | None] = mapped_column(String(16))
    # The same person at the consortium's other sites (pacs/patients.py): his resident identity
    # card number, and a digest of normalised name + birth date + sex (both NULL when unknown).
    national_id: Mapped[str | None] = mapped_column(String(18), index=True)
    demographics_key: Mapped[str | None] = mapped_column(String(64), index=True)


class PatientLink(Base):
    """A reader's decision whether two patient rows of one consortium that match only probably
    (name + birth date + sex, pacs/patients.py) are the same person. One row per pair, the lower
    patient id first; a later decision replaces it (each one is in the change log and the
    access audit: pacs/patient_links.py)."""

    __tablename__ = "patient_link"
    __table_args__ = (
        UniqueConstraint("patient_low", "patient_high"),
        CheckConstraint("patient_low < patient_high", name="ck_patient_link_order"),
        CheckConstraint("decision IN ('confirmed', 'rejected')", name="ck_patient_link_decision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortium.id"), index=True)
    patient_low: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    patient_high: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    # Denormalised so QIDO / C-FIND / the worklist filter on one table.
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    patient_name: Mapped[str | None] = mapped_column(String(320), index=True)
    study_date: Mapped[str | None] = mapped_column(String(8), index=True)
    study_time: Mapped[str | None] = mapped_column(String(32))
    accession_number: Mapped[str | None] = mapped_column(String(64), index=True)
    study_id: Mapped[str | None] = mapped_column(String(16))
    study_description: Mapped[str | None] = mapped_column(String(200))
    referring_physician: Mapped[str | None] = mapped_column(String(320))
    modalities: Mapped[str] = mapped_column(String(64), default="")  # backslash-joined, sorted
    body_part: Mapped[str | None] = mapped_column(String(64))
    num_series: Mapped[int] = mapped_column(Integer, default=0)
    num_instances: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default=StudyState.RECEIVING, index=True)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the study was handed to reading (``study.ready_for_reading``: after AI, or by the
    # reading sweeper when AI is late); cleared each time the study turns stable again.
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    series: Mapped[list[Series]] = relationship(back_populates="study")

    __table_args__ = (
        Index("ix_study_state_last", "state", "last_received_at"),
        Index("ix_study_state_ready", "state", "ready_at"),
    )


class StudyManifest(Base):
    """What an edge says a study holds: SOP Instance UID → the instance's content digest (the
    sha256 of its data set after group 0002 in native form, pacs/lossless.py; for a native
    instance ``Instance.sha256``). A study of a site ``held_for_manifest`` turns stable only once
    every listed instance is here with that digest (``satisfied_at``)."""

    __tablename__ = "study_manifest"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    instances: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    num_instances: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    satisfied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str | None] = mapped_column(String(16), index=True)
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str | None] = mapped_column(String(200))
    body_part: Mapped[str | None] = mapped_column(String(64))
    num_instances: Mapped[int] = mapped_column(Integer, default=0)

    study: Mapped[Study] = relationship(back_populates="series")


class Instance(Base):
    """One stored version of a SOP instance. Only one version per UID is current."""

    __tablename__ = "instance"
    __table_args__ = (
        UniqueConstraint("sop_instance_uid", "version"),
        Index("ix_instance_current", "sop_instance_uid", "is_current"),
        # (series, id): a series' instances, and its first one by an index seek (QIDO includefield).
        Index("ix_instance_series_pk_id", "series_pk", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_current: Mapped[bool] = mapped_column(default=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(String(200), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    dataset_offset: Mapped[int] = mapped_column(Integer)  # where the data set starts after group 0002
    sha256: Mapped[str] = mapped_column(String(64))  # of the data set after group 0002
    header_sha256: Mapped[str] = mapped_column(String(64))  # data set before Pixel Data
    pixel_sha256: Mapped[str] = mapped_column(String(64))  # Pixel Data element to the end
    # The content digest (pacs/lossless.py): sha256 of the data set in its native Explicit VR
    # Little Endian form, when it differs from ``sha256`` (a JPEG-LS Lossless copy); NULL: = sha256.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    content_digest: Mapped[str] = column_property(func.coalesce(content_sha256, sha256))
    # The data set before Pixel Data as received, and its DICOM JSON model (bulk data as
    # references). The JSON is built off the C-STORE path (pacs/headers.py: when the study turns
    # stable, or on first read); measured, building it at ingest cost ~2.3 ms an instance.
    header_raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # None only in rows from before 0002
    header_charset: Mapped[str | None] = mapped_column(String(64))  # the site AE's, when the data set declared none
    header: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    source_address: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Quarantine(Base):
    """Bytes kept aside for inspection: malformed data, or a conflicting re-send."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    reason_code: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    source_address: Mapped[str | None] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(128))
    study_uid: Mapped[str | None] = mapped_column(String(128))
    object_key: Mapped[str] = mapped_column(String(200), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """Something a site's staff and the administrator should look at."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), index=True)
    study_uid: Mapped[str | None] = mapped_column(String(128))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Change(Base):
    """The append-only event log; ``seq`` is monotonic and never reused."""

    __tablename__ = "changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    study_uid: Mapped[str | None] = mapped_column(String(128), index=True)
    site_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)


class Job(Base):
    """A unit of background work, inserted in the transaction of the change that causes it."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_take", "kind", "state", "next_run_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
