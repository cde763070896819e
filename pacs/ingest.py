"""Ingest: one received file in, one outcome out — the same path for C-STORE, STOW and import.

Order (after Orthanc's ServerContext): put the bytes in the object store (durable on return)
while inspecting them → index in one transaction. Only then may the caller answer Success.
When the file is refused or indexing fails, the ingest deletes the object it wrote (its key is
its own: ``object_key``); if even that fails, the orphan sweep removes it later.

The index work per instance is a handful of Core statements (3 SELECT, 2 INSERT, 2 UPDATE):
measured, the ORM version of the same work cost ~5 ms an instance (docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy import BigInteger, Integer, Table, and_, bindparam, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs import events
from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.index.models import Alert, Instance, Patient, Quarantine, Series, Study, StudyState
from pacs.index.types import UTCDateTime, utcnow
from pacs.metrics import INGEST_SECONDS, INSTANCES, RECEIVED_BYTES
from pacs.part10 import Inspected, Malformed, file_sha256, inspect_part10
from pacs.patients import NATIONAL_ID_ISSUER, identity_values, masked, refresh_identity
from pacs.storage import BlobStore, StoreUnavailable, object_key

log = structlog.get_logger(__name__)


class OutcomeKind(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same UID, same data set: already stored, nothing written
    NEW_VERSION = "new_version"  # same UID and pixels, corrected header: old version kept
    CONFLICT = "conflict"  # same UID, other pixels: first kept, this one quarantined
    MALFORMED = "malformed"  # cannot be understood: quarantined
    INCONSISTENT = "inconsistent"  # contradicts the index (another site's study, a series or
    # instance under another parent): quarantined, never merged
    UNAVAILABLE = "unavailable"  # store or index down: nothing kept, the sender may retry


@dataclass(frozen=True)
class IngestOutcome:
    kind: OutcomeKind
    reason: str = ""
    code: str = ""  # a stable short code for malformed data
    study_uid: str | None = None
    sop_instance_uid: str | None = None

    @property
    def accepted(self) -> bool:
        """The sender may consider the instance delivered."""
        return self.kind in {OutcomeKind.STORED, OutcomeKind.DUPLICATE, OutcomeKind.NEW_VERSION, OutcomeKind.CONFLICT}


@dataclass(frozen=True)
class Origin:
    """Who sent an instance. ``expected_*`` come from the DIMSE command, when there is one."""

    site_id: int
    calling_ae: str | None
    source_address: str | None
    assumed_charset: str | None = None
    expected_sop_instance_uid: str | None = None
    expected_sop_class_uid: str | None = None
    # An object the centre made from the study itself (an AI pre-screen's SR or heat map): it
    # joins the study without re-opening a stable study or counting as a late image — which
    # would make the study stable again, queue AI again and loop for ever.
    derived: bool = False


class Ingest:
    """Receives files into the store and the index. Thread-safe; one per process."""

    def __init__(
        self,
        store: BlobStore,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = utcnow,
        writers: int = 32,
        national_id_issuer: str = NATIONAL_ID_ISSUER,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.clock = clock
        self.national_id_issuer = national_id_issuer
        # One object write in flight per concurrent receive; threads start on demand.
        self._writer = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="ingest-write")

    def receive(self, path: Path, origin: Origin) -> IngestOutcome:
        """Ingest the Part-10 file at ``path``; never raises for bad data or a down dependency."""
        started = time.perf_counter()
        size = path.stat().st_size
        outcome = self._receive(path, origin)
        INGEST_SECONDS.observe(time.perf_counter() - started)
        INSTANCES.labels(outcome.kind.value).inc()
        RECEIVED_BYTES.inc(size)
        return outcome

    def _receive(self, path: Path, origin: Origin) -> IngestOutcome:
        # The object write (fsync, link; or the S3 upload) mostly waits on the disk or the
        # network without the GIL, so it runs beside the inspection instead of after it.
        key = object_key("instances")
        writing = self._writer.submit(self.store.put_file, key, path)
        inspected = inspect_part10(
            path, assumed_charset=origin.assumed_charset, national_id_issuer=self.national_id_issuer
        )
        try:
            writing.result()
            written: StoreUnavailable | None = None
        except StoreUnavailable as exc:
            written = exc
        refusal = self._refusal(inspected, origin)
        if refusal is not None:
            if written is None:
                self._discard(key)
            code, reason = refusal
            study_uid = inspected.study_uid
            sop_instance_uid = inspected.sop_instance_uid
            return self._quarantine(path, origin, code, reason, OutcomeKind.MALFORMED, study_uid, sop_instance_uid)
        assert isinstance(inspected, Inspected)
        try:
            if written is not None:
                raise written
            return self._index_or_discard(key, path, inspected, origin)
        except (StoreUnavailable, IndexUnavailable) as exc:
            log.warning(
                "ingest.unavailable",
                study_uid=inspected.study_uid,
                sop_instance_uid=inspected.sop_instance_uid,
                calling_ae=origin.calling_ae,
                source=origin.source_address,
                error=str(exc),
            )
            return IngestOutcome(
                OutcomeKind.UNAVAILABLE,
                str(exc),
                study_uid=inspected.study_uid,
                sop_instance_uid=inspected.sop_instance_uid,
            )

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    @classmethod
    def _refusal(cls, inspected: Inspected | Malformed, origin: Origin) -> tuple[str, str] | None:
        """(code, reason) when the file cannot be accepted as it is."""
        if isinstance(inspected, Malformed):
            return inspected.code, inspected.reason
        mismatch = cls._command_mismatch(inspected, origin)
        return ("command-mismatch", mismatch) if mismatch else None

    @staticmethod
    def _command_mismatch(inspected: Inspected, origin: Origin) -> str | None:
        # PS3.4 B.2.3: the data set's UIDs must be those of the C-STORE request.
        if origin.expected_sop_instance_uid and origin.expected_sop_instance_uid != inspected.sop_instance_uid:
            return (
                f"data set SOP Instance UID {inspected.sop_instance_uid} differs from the C-STORE "
                f"request's {origin.expected_sop_instance_uid}"
            )
        if origin.expected_sop_class_uid and origin.expected_sop_class_uid != inspected.sop_class_uid:
            return (
                f"data set SOP Class UID {inspected.sop_class_uid} differs from the C-STORE "
                f"request's {origin.expected_sop_class_uid}"
            )
        return None

    def _index_or_discard(self, key: str, path: Path, inspected: Inspected, origin: Origin) -> IngestOutcome:
        # The object is written first and the decision taken in the one index transaction that
        # records it (measured: a separate read-only transaction before the write cost ~3 ms an
        # instance, with SQLite's BEGIN IMMEDIATE serialising it behind other associations).
        # A duplicate or a contradiction then only costs removing the object again.
        outcome: IngestOutcome | None = None
        instead: Callable[[Path], IngestOutcome] | None = None
        try:
            for attempt in range(3):
                try:
                    with transaction(self.sessions) as session:
                        known = _Known.load(session, inspected)
                        instead = self._classify(session, known, inspected, origin)
                        if instead is None:
                            outcome = self._index(session, known, key, inspected, origin)
                    break
                except IntegrityError:
                    # Another association created the same study/series/instance meanwhile;
                    # the next attempt sees its rows.
                    outcome = instead = None
                    if attempt == 2:
                        raise IndexUnavailable("index kept conflicting on concurrent inserts") from None
                    time.sleep(0.05 * (attempt + 1))
        finally:
            if outcome is None:
                self._discard(key)
        if instead is not None:
            return instead(path)
        assert outcome is not None
        return outcome

    def _discard(self, key: str) -> None:
        """Remove an object no row references; the orphan sweep retries what fails here."""
        try:
            self.store.delete(key)
        except StoreUnavailable as exc:
            log.warning("ingest.discard_failed", object_key=key, error=str(exc))

    def _classify(
        self, session: Session, known: _Known, inspected: Inspected, origin: Origin
    ) -> Callable[[Path], IngestOutcome] | None:
        """``None`` when the instance should be stored and indexed; else what to do instead."""
        inconsistency = known.contradiction(inspected, origin)
        if inconsistency is not None:
            code, reason = inconsistency
            return lambda path: self._quarantine(
                path, origin, code, reason, OutcomeKind.INCONSISTENT, inspected.study_uid, inspected.sop_instance_uid
            )
        current = known.current
        if current is None:
            return None
        if current.sha256 == inspected.sha256:
            duplicate = self._duplicate(session, inspected, origin)
            return lambda _path: duplicate
        if current.content_digest == inspected.content_digest:
            # The same data set in another transfer syntax, losslessly (pacs/lossless.py: same
            # header bytes, pixels decoding identically) — an edge's JPEG-LS copy of what the
            # modality sent, or the reverse: the instance is here; the first copy is kept.
            same = self._duplicate(session, inspected, origin, transfer_syntax=inspected.transfer_syntax_uid)
            return lambda _path: same
        if current.pixel_sha256 == inspected.pixel_sha256:
            return None  # header corrected: stored as a new version by _index
        reason = (
            f"SOP Instance UID {inspected.sop_instance_uid} was received before with other pixel data; "
            f"the first copy is kept, this one quarantined"
        )
        return lambda path: self._quarantine(
            path,
            origin,
            "pixel-conflict",
            reason,
            OutcomeKind.CONFLICT,
            inspected.study_uid,
            inspected.sop_instance_uid,
            alert=True,
        )

    def _duplicate(
        self, session: Session, inspected: Inspected, origin: Origin, *, transfer_syntax: str | None = None
    ) -> IngestOutcome:
        details: dict[str, Any] = {"lossless_copy_in": transfer_syntax} if transfer_syntax else {}
        _record(session, events.INSTANCE_DUPLICATE, origin, inspected.study_uid, inspected.sop_instance_uid, **details)
        return IngestOutcome(
            OutcomeKind.DUPLICATE,
            "already stored with identical content"
            + (f" (this copy in {transfer_syntax}, losslessly the same)" if transfer_syntax else ""),
            study_uid=inspected.study_uid,
            sop_instance_uid=inspected.sop_instance_uid,
        )

    def _index(self, session: Session, known: _Known, key: str, inspected: Inspected, origin: Origin) -> IngestOutcome:
        """Record a new instance, or a new version of ``known.current`` (same pixels, other header)."""
        now = self.clock()
        tags = inspected.tags
        current = known.current
        study = known.study
        if study is None:
            study = self._new_study(session, inspected, origin, now)
        if known.series is None:
            series_pk = self._new_series(session, study, inspected)
        else:
            series_pk = known.series.pk

        connection = session.connection()
        version = 1
        if current is not None:
            version = current.version + 1
            connection.execute(_SQL.retire_instance, {"b_pk": current.pk})
        else:
            connection.execute(_SQL.count_series, {"b_pk": series_pk})
        counts = {"b_pk": study.pk, "b_new": 0 if current else 1, "b_size": inspected.size}
        if origin.derived:
            connection.execute(_SQL.count_study_derived, counts)
        else:
            connection.execute(_SQL.count_study, {**counts, "b_now": now})
        if study.state == StudyState.STABLE and not origin.derived:
            session.execute(
                update(Study).where(Study.id == study.pk).values(state=StudyState.RECEIVING, stable_at=None)
            )
            _record(session, events.STUDY_REOPENED, origin, inspected.study_uid, inspected.sop_instance_uid)

        connection.execute(
            _SQL.insert_instance,
            dict(
                series_pk=series_pk,
                sop_instance_uid=inspected.sop_instance_uid,
                sop_class_uid=inspected.sop_class_uid,
                instance_number=tags["instance_number"],
                version=version,
                is_current=True,
                transfer_syntax_uid=inspected.transfer_syntax_uid,
                rows=tags["rows"],
                columns=tags["columns"],
                number_of_frames=tags["number_of_frames"],
                object_key=key,
                size=inspected.size,
                dataset_offset=inspected.dataset_offset,
                sha256=inspected.sha256,
                header_sha256=inspected.header_sha256,
                pixel_sha256=inspected.pixel_sha256,
                content_sha256=inspected.content_sha256,
                header_raw=inspected.header_raw,
                header_charset=inspected.charset,
                calling_ae=origin.calling_ae,
                source_address=origin.source_address,
                received_at=now,
            ),
        )
        if current is None:
            _record(
                session,
                events.INSTANCE_STORED,
                origin,
                inspected.study_uid,
                inspected.sop_instance_uid,
                series_uid=inspected.series_uid,
                size=inspected.size,
                charset_assumed=inspected.charset_assumed,
                **({"derived": True} if origin.derived else {}),
            )
            return IngestOutcome(
                OutcomeKind.STORED, study_uid=inspected.study_uid, sop_instance_uid=inspected.sop_instance_uid
            )

        message = (
            f"instance {inspected.sop_instance_uid} was re-sent with a changed header and identical pixel "
            f"data; stored as version {version}, version {current.version} kept"
        )
        _alert(session, events.INSTANCE_NEW_VERSION, origin, inspected, message, now, version=version)
        return IngestOutcome(
            OutcomeKind.NEW_VERSION, message, study_uid=inspected.study_uid, sop_instance_uid=inspected.sop_instance_uid
        )

    def _new_study(self, session: Session, inspected: Inspected, origin: Origin, now: datetime) -> _KnownStudy:
        tags = inspected.tags
        patient, other_card = _get_or_create_patient(session, origin.site_id, tags)
        study = Study(
            study_uid=inspected.study_uid,
            site_id=origin.site_id,
            patient_pk=patient.id,
            patient_id=tags["patient_id"],
            patient_name=tags["patient_name"],
            study_date=tags["study_date"],
            study_time=tags["study_time"],
            accession_number=tags["accession_number"],
            study_id=tags["study_id"],
            study_description=tags["study_description"],
            referring_physician=tags["referring_physician"],
            modalities="",
            body_part=tags["body_part"],
            num_series=0,
            num_instances=0,
            bytes=0,
            state=StudyState.RECEIVING,
            first_received_at=now,
            last_received_at=now,
        )
        session.add(study)
        session.flush()
        _record(session, events.STUDY_RECEIVED, origin, study.study_uid, inspected.sop_instance_uid)
        if other_card is not None and patient.national_id is not None:
            _card_conflict(session, origin, inspected, patient, other_card, now)
        return _KnownStudy(study.id, study.site_id, study.state, study.modalities, study.body_part)

    @staticmethod
    def _new_series(session: Session, study: _KnownStudy, inspected: Inspected) -> int:
        tags = inspected.tags
        series_pk = session.execute(
            insert(Series)
            .values(
                study_pk=study.pk,
                series_uid=inspected.series_uid,
                modality=tags["modality"],
                series_number=tags["series_number"],
                series_description=tags["series_description"],
                body_part=tags["body_part"],
                num_instances=0,
            )
            .returning(Series.id)
        ).scalar_one()
        modalities = study.modalities
        if tags["modality"]:
            modalities = "\\".join(sorted(set(filter(None, modalities.split("\\"))) | {tags["modality"]}))
        session.execute(
            update(Study)
            .where(Study.id == study.pk)
            .values(
                num_series=Study.num_series + 1,
                modalities=modalities,
                body_part=study.body_part or tags["body_part"],
            )
        )
        return int(series_pk)

    def _quarantine(
        self,
        path: Path,
        origin: Origin,
        code: str,
        reason: str,
        kind: OutcomeKind,
        study_uid: str | None,
        sop_instance_uid: str | None,
        *,
        alert: bool = False,
    ) -> IngestOutcome:
        """Keep the bytes aside with why; the change and (optionally) an alert in one transaction."""
        log.warning(
            "instance.quarantined",
            code=code,
            reason=reason,
            study_uid=study_uid,
            sop_instance_uid=sop_instance_uid,
            calling_ae=origin.calling_ae,
            source=origin.source_address,
        )
        try:
            digest = file_sha256(path)
            key = object_key("quarantine")
            self.store.put_file(key, path)
            with transaction(self.sessions) as session:
                now = self.clock()
                session.add(
                    Quarantine(
                        reason_code=code,
                        reason=reason,
                        site_id=origin.site_id,
                        calling_ae=origin.calling_ae,
                        source_address=origin.source_address,
                        sop_instance_uid=sop_instance_uid,
                        study_uid=study_uid,
                        object_key=key,
                        size=path.stat().st_size,
                        sha256=digest,
                        received_at=now,
                    )
                )
                if alert:
                    session.add(
                        Alert(
                            kind=events.INSTANCE_QUARANTINED,
                            site_id=origin.site_id,
                            study_uid=study_uid,
                            sop_instance_uid=sop_instance_uid,
                            message=reason,
                            created_at=now,
                        )
                    )
                append_change(
                    session,
                    events.INSTANCE_QUARANTINED,
                    study_uid=study_uid,
                    site_id=origin.site_id,
                    sop_instance_uid=sop_instance_uid,
                    calling_ae=origin.calling_ae,
                    code=code,
                    reason=reason,
                )
        except (StoreUnavailable, IndexUnavailable) as exc:
            return IngestOutcome(
                OutcomeKind.UNAVAILABLE, f"could not quarantine: {exc}", code, study_uid, sop_instance_uid
            )
        return IngestOutcome(kind, reason, code, study_uid, sop_instance_uid)


def _record(
    session: Session,
    kind: str,
    origin: Origin,
    study_uid: str,
    sop_instance_uid: str,
    *,
    warn: bool = False,
    **details: Any,
) -> None:
    """One ingest decision: a change in the caller's transaction and a log line, both with the
    study, the instance, and who sent it."""
    append_change(
        session,
        kind,
        study_uid=study_uid,
        site_id=origin.site_id,
        sop_instance_uid=sop_instance_uid,
        calling_ae=origin.calling_ae,
        **details,
    )
    (log.warning if warn else log.info)(
        kind,
        study_uid=study_uid,
        sop_instance_uid=sop_instance_uid,
        calling_ae=origin.calling_ae,
        source=origin.source_address,
        **details,
    )


_STUDY, _SERIES, _INSTANCE = (cast(Table, model.__table__) for model in (Study, Series, Instance))


class _SQL:
    """The statements of the C-STORE path, built once (measured: building and caching them per
    call cost more than running them). Bound parameters are ``b_*``: SQLAlchemy reserves the
    column names for VALUES/SET."""

    # What the index holds for the instance's study, series and current SOP instance, in one
    # statement: three LEFT JOINs from a one-row anchor (each matches at most one row: the UIDs
    # are unique, and one version of an instance is current). One round trip instead of three
    # on PostgreSQL.
    _anchor = select(literal(1).label("one")).subquery("anchor")
    _study = _STUDY.alias("known_study")
    _series = _SERIES.alias("known_series")
    _series_study = _STUDY.alias("known_series_study")
    _current = _INSTANCE.alias("known_instance")
    _current_series = _SERIES.alias("known_instance_series")
    known = (
        select(
            _study.c.id,
            _study.c.site_id,
            _study.c.state,
            _study.c.modalities,
            _study.c.body_part,
            _series.c.id,
            _series_study.c.study_uid,
            _current.c.id,
            _current.c.version,
            _current.c.sha256,
            _current.c.pixel_sha256,
            _current.c.content_sha256,
            _current_series.c.series_uid,
        )
        .select_from(_anchor)
        .outerjoin(_study, _study.c.study_uid == bindparam("b_study_uid"))
        .outerjoin(_series, _series.c.series_uid == bindparam("b_series_uid"))
        .outerjoin(_series_study, _series_study.c.id == _series.c.study_pk)
        .outerjoin(
            _current,
            and_(_current.c.sop_instance_uid == bindparam("b_sop_uid"), _current.c.is_current.is_(True)),
        )
        .outerjoin(_current_series, _current_series.c.id == _current.c.series_pk)
    )
    insert_instance = insert(_INSTANCE)
    retire_instance = update(_INSTANCE).where(_INSTANCE.c.id == bindparam("b_pk")).values(is_current=False)
    count_series = (
        update(_SERIES).where(_SERIES.c.id == bindparam("b_pk")).values(num_instances=_SERIES.c.num_instances + 1)
    )
    count_study = (
        update(_STUDY)
        .where(_STUDY.c.id == bindparam("b_pk"))
        .values(
            num_instances=_STUDY.c.num_instances + bindparam("b_new", type_=Integer),
            bytes=_STUDY.c.bytes + bindparam("b_size", type_=BigInteger),
            last_received_at=bindparam("b_now", type_=UTCDateTime),
        )
    )
    # A derived object leaves last_received_at alone: reading compares it with what a reader
    # has seen to flag late images.
    count_study_derived = (
        update(_STUDY)
        .where(_STUDY.c.id == bindparam("b_pk"))
        .values(
            num_instances=_STUDY.c.num_instances + bindparam("b_new", type_=Integer),
            bytes=_STUDY.c.bytes + bindparam("b_size", type_=BigInteger),
        )
    )


@dataclass(frozen=True)
class _KnownStudy:
    pk: int
    site_id: int
    state: str
    modalities: str
    body_part: str | None


@dataclass(frozen=True)
class _KnownSeries:
    pk: int
    study_uid: str  # the study it is filed under


@dataclass(frozen=True)
class _KnownInstance:
    pk: int
    version: int
    sha256: str
    pixel_sha256: str
    content_sha256: str | None
    series_uid: str  # the series the current version is filed in

    @property
    def content_digest(self) -> str:
        return self.content_sha256 or self.sha256


@dataclass(frozen=True)
class _Known:
    """What the index already holds for an instance's study, series and SOP instance, read once
    (one SELECT of the columns needed, no ORM objects) in the transaction that then
    decides and records it."""

    study: _KnownStudy | None
    series: _KnownSeries | None
    current: _KnownInstance | None

    @classmethod
    def load(cls, session: Session, inspected: Inspected) -> _Known:
        row = (
            session.connection()
            .execute(
                _SQL.known,
                {
                    "b_study_uid": inspected.study_uid,
                    "b_series_uid": inspected.series_uid,
                    "b_sop_uid": inspected.sop_instance_uid,
                },
            )
            .first()
        )
        assert row is not None  # the one-row anchor: always a row, its columns NULL where unknown
        return cls(
            _KnownStudy(*row[0:5]) if row[0] is not None else None,
            _KnownSeries(*row[5:7]) if row[5] is not None else None,
            _KnownInstance(*row[7:13]) if row[7] is not None else None,
        )

    def contradiction(self, inspected: Inspected, origin: Origin) -> tuple[str, str] | None:
        """(code, reason) when the instance's place in the hierarchy contradicts the index.

        These are permanent: answering 0xA700 would make the sender retry for ever.
        """
        if self.study is not None and self.study.site_id != origin.site_id:
            return "foreign-study", f"study {inspected.study_uid} belongs to another site; not merged"
        if self.series is not None and self.series.study_uid != inspected.study_uid:
            return "series-conflict", (
                f"series {inspected.series_uid} is already indexed under study {self.series.study_uid}, "
                f"not {inspected.study_uid}"
            )
        if self.current is not None and self.current.series_uid != inspected.series_uid:
            return "instance-moved", (
                f"SOP instance {inspected.sop_instance_uid} is already indexed in series "
                f"{self.current.series_uid}, not {inspected.series_uid}"
            )
        return None


def _card_conflict(
    session: Session, origin: Origin, inspected: Inspected, patient: Patient, other_card: str, now: datetime
) -> None:
    """A known patient row's new study brings another ID card number: the row keeps its first
    one (a patient row is one site's Patient ID), and the site's staff and the administrator
    are told, since one of the two registrations is wrong."""
    assert patient.national_id is not None
    message = (
        f"Patient ID {patient.patient_id!r}: study {inspected.study_uid} carries ID card number "
        f"{masked(other_card)}, the patient already has {masked(patient.national_id)}; the first kept, "
        "check the registration at the site"
    )
    _alert(session, events.PATIENT_NATIONAL_ID_CONFLICT, origin, inspected, message, now, patient_pk=patient.id)


def _alert(
    session: Session, kind: str, origin: Origin, inspected: Inspected, message: str, now: datetime, **details: Any
) -> None:
    """An ingest decision the site's staff and the administrator must see: an alert, a change
    and a warning, all in the caller's transaction."""
    session.add(
        Alert(
            kind=kind,
            site_id=origin.site_id,
            study_uid=inspected.study_uid,
            sop_instance_uid=inspected.sop_instance_uid,
            message=message,
            created_at=now,
        )
    )
    _record(session, kind, origin, inspected.study_uid, inspected.sop_instance_uid, warn=True, **details)


def _get_or_create_patient(session: Session, site_id: int, tags: dict[str, object]) -> tuple[Patient, str | None]:
    """The site's patient row for the tags' Patient ID (made when new), and another ID card
    number the tags bring when the row already has one (``refresh_identity``)."""
    patient_id = str(tags["patient_id"] or "")
    patient = session.scalar(select(Patient).where(Patient.site_id == site_id, Patient.patient_id == patient_id))
    if patient is None:
        patient = Patient(
            site_id=site_id,
            patient_id=patient_id,
            patient_name=tags["patient_name"],
            birth_date=tags["birth_date"],
            sex=tags["sex"],
            **identity_values(tags),
        )
        session.add(patient)
        session.flush()
        return patient, None
    return patient, refresh_identity(patient, tags)
