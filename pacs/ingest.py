"""Ingest: one received file in, one outcome out — the same path for C-STORE, STOW and import.

Order (after Orthanc's ServerContext): inspect → put the bytes in the object store (durable on
return) → index in one transaction. Only then may the caller answer Success. When indexing
fails, the ingest deletes the object it wrote (its key is its own: ``object_key``); if even
that fails, the orphan sweep removes it later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs import events
from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.index.models import Alert, Instance, Patient, Quarantine, Series, Study, StudyState
from pacs.index.types import utcnow
from pacs.part10 import Inspected, Malformed, file_sha256, inspect_part10
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


class Ingest:
    """Receives files into the store and the index. Thread-safe; one per process."""

    def __init__(
        self, store: BlobStore, sessions: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.clock = clock

    def receive(self, path: Path, origin: Origin) -> IngestOutcome:
        """Ingest the Part-10 file at ``path``; never raises for bad data or a down dependency."""
        inspected = inspect_part10(path, assumed_charset=origin.assumed_charset)
        if isinstance(inspected, Malformed):
            return self._quarantine(
                path,
                origin,
                inspected.code,
                inspected.reason,
                OutcomeKind.MALFORMED,
                inspected.study_uid,
                inspected.sop_instance_uid,
            )
        mismatch = self._command_mismatch(inspected, origin)
        if mismatch:
            return self._quarantine(
                path,
                origin,
                "command-mismatch",
                mismatch,
                OutcomeKind.MALFORMED,
                inspected.study_uid,
                inspected.sop_instance_uid,
            )
        try:
            return self._store_and_index(path, inspected, origin)
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

    def _store_and_index(self, path: Path, inspected: Inspected, origin: Origin) -> IngestOutcome:
        # The object is written first and the decision taken in the one index transaction that
        # records it (measured: a separate read-only transaction before the write cost ~3 ms an
        # instance, with SQLite's BEGIN IMMEDIATE serialising it behind other associations).
        # A duplicate or a contradiction then only costs removing the object again.
        key = object_key("instances", inspected.sha256)
        self.store.put_file(key, path)
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

    def _duplicate(self, session: Session, inspected: Inspected, origin: Origin) -> IngestOutcome:
        _record(session, events.INSTANCE_DUPLICATE, origin, inspected.study_uid, inspected.sop_instance_uid)
        return IngestOutcome(
            OutcomeKind.DUPLICATE,
            "already stored with identical content",
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
            patient = _get_or_create_patient(session, origin.site_id, tags)
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
        elif study.state == StudyState.STABLE:
            study.state = StudyState.RECEIVING
            study.stable_at = None
            _record(session, events.STUDY_REOPENED, origin, study.study_uid, inspected.sop_instance_uid)

        series = known.series
        if series is None:
            series = Series(
                study_pk=study.id,
                series_uid=inspected.series_uid,
                modality=tags["modality"],
                series_number=tags["series_number"],
                series_description=tags["series_description"],
                body_part=tags["body_part"],
                num_instances=0,
            )
            session.add(series)
            session.flush()
            study.num_series += 1
            if tags["modality"]:
                study.modalities = "\\".join(
                    sorted(set(filter(None, study.modalities.split("\\"))) | {tags["modality"]})
                )
            study.body_part = study.body_part or tags["body_part"]

        version = 1
        if current is not None:
            version = current.version + 1
            session.execute(update(Instance).where(Instance.id == current.id).values(is_current=False))
        else:
            series.num_instances += 1
            study.num_instances += 1
        study.bytes += inspected.size
        study.last_received_at = now

        session.add(
            Instance(
                series_pk=series.id,
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
                header=inspected.header,
                calling_ae=origin.calling_ae,
                source_address=origin.source_address,
                received_at=now,
            )
        )
        if current is None:
            _record(
                session,
                events.INSTANCE_STORED,
                origin,
                study.study_uid,
                inspected.sop_instance_uid,
                series_uid=inspected.series_uid,
                size=inspected.size,
                charset_assumed=inspected.charset_assumed,
            )
            return IngestOutcome(
                OutcomeKind.STORED, study_uid=study.study_uid, sop_instance_uid=inspected.sop_instance_uid
            )

        message = (
            f"instance {inspected.sop_instance_uid} was re-sent with a changed header and identical pixel "
            f"data; stored as version {version}, version {current.version} kept"
        )
        session.add(
            Alert(
                kind=events.INSTANCE_NEW_VERSION,
                site_id=origin.site_id,
                study_uid=study.study_uid,
                sop_instance_uid=inspected.sop_instance_uid,
                message=message,
                created_at=now,
            )
        )
        _record(
            session,
            events.INSTANCE_NEW_VERSION,
            origin,
            study.study_uid,
            inspected.sop_instance_uid,
            warn=True,
            version=version,
        )
        return IngestOutcome(
            OutcomeKind.NEW_VERSION, message, study_uid=study.study_uid, sop_instance_uid=inspected.sop_instance_uid
        )

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
            key = object_key("quarantine", digest)
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


@dataclass
class _Known:
    """What the index already holds for an instance's study, series and SOP instance, read once
    in the transaction that then decides and records it."""

    study: Study | None
    series: Series | None
    series_study_uid: str | None  # the study the known series is filed under
    current: Instance | None
    current_series_uid: str | None  # the series the current version is filed in

    @classmethod
    def load(cls, session: Session, inspected: Inspected) -> _Known:
        study = session.scalar(select(Study).where(Study.study_uid == inspected.study_uid))
        series = session.scalar(select(Series).where(Series.series_uid == inspected.series_uid))
        series_study_uid = None
        if series is not None:
            series_study_uid = (
                study.study_uid
                if study is not None and series.study_pk == study.id
                else session.scalar(select(Study.study_uid).where(Study.id == series.study_pk))
            )
        current = _current_instance(session, inspected.sop_instance_uid)
        current_series_uid = None
        if current is not None:
            current_series_uid = (
                series.series_uid
                if series is not None and current.series_pk == series.id
                else session.scalar(select(Series.series_uid).where(Series.id == current.series_pk))
            )
        return cls(study, series, series_study_uid, current, current_series_uid)

    def contradiction(self, inspected: Inspected, origin: Origin) -> tuple[str, str] | None:
        """(code, reason) when the instance's place in the hierarchy contradicts the index.

        These are permanent: answering 0xA700 would make the sender retry for ever.
        """
        if self.study is not None and self.study.site_id != origin.site_id:
            return "foreign-study", f"study {inspected.study_uid} belongs to another site; not merged"
        if self.series_study_uid is not None and self.series_study_uid != inspected.study_uid:
            return "series-conflict", (
                f"series {inspected.series_uid} is already indexed under study {self.series_study_uid}, "
                f"not {inspected.study_uid}"
            )
        if self.current is not None and self.current_series_uid != inspected.series_uid:
            return "instance-moved", (
                f"SOP instance {inspected.sop_instance_uid} is already indexed in series "
                f"{self.current_series_uid}, not {inspected.series_uid}"
            )
        return None


def _current_instance(session: Session, sop_instance_uid: str) -> Instance | None:
    return session.scalar(
        select(Instance).where(Instance.sop_instance_uid == sop_instance_uid, Instance.is_current.is_(True))
    )


def _get_or_create_patient(session: Session, site_id: int, tags: dict[str, object]) -> Patient:
    patient_id = str(tags["patient_id"] or "")
    patient = session.scalar(select(Patient).where(Patient.site_id == site_id, Patient.patient_id == patient_id))
    if patient is None:
        patient = Patient(
            site_id=site_id,
            patient_id=patient_id,
            patient_name=tags["patient_name"],
            birth_date=tags["birth_date"],
            sex=tags["sex"],
        )
        session.add(patient)
        session.flush()
    return patient
