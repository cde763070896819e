"""The AI pre-screen worker (``yunying worker ai``, and a thread of ``yunying serve``): takes
``ai.prescreen`` jobs with a lease, reads the study through ``pacs``, runs each model the
registry says applies (in a child process with a time limit), writes the pre-screen SR and
heat maps back into the study through ``pacs`` ingest, and in one transaction records the
findings, one ``ai.*`` change per model and the hand-off to reading.

A study always goes on to reading: a model that raises or hangs is ``ai.failed`` and the
others' results still count; a job that keeps failing (index or store down, a study that
cannot be read) is handed over without AI once its retry budget is spent; and when no worker
runs at all, reading's sweeper hands it over after ``YUNYING_READING_AI_TIMEOUT_S``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ai_models import events
from ai_models.contract import StudyInput, Triage
from ai_models.inputs import StudyGone, study_input
from ai_models.records import AiFinding
from ai_models.registry import Registry
from ai_models.results import prescreen_objects
from ai_models.runner import ModelOutcome, ModelRunner
from ai_models.settings import AISettings
from pacs import events as pacs_events
from pacs.index.db import IndexUnavailable, append_change, transaction
from pacs.index.models import Job, JobState, Study, StudyState
from pacs.index.types import utcnow
from pacs.ingest import Ingest, Origin, OutcomeKind
from pacs.jobs import LeaseLost, extend_lease, fail_leased, finish_leased, take_leased
from pacs.readiness import mark_ready_for_reading
from pacs.service import Services
from pacs.storage import StoreUnavailable

log = structlog.get_logger(__name__)

# The calling AE recorded on the pre-screen's own objects (SR, heat maps) in the index.
AI_CALLING_AE: Final = "YUNYING_AI"
_TRIAGE_RANK: Final = {Triage.STAT: 2, Triage.URGENT: 1}


class ResultsUnavailable(Exception):
    """The pre-screen's DICOM objects could not be stored (store or index down): retry the job."""


class AiWorker:
    """One pre-screen worker; several may run, in one process or many (the lease keeps each
    job with one of them)."""

    def __init__(self, services: Services, settings: AISettings, registry: Registry, *, owner: str | None = None):
        self.services = services
        self.settings = settings
        self.registry = registry
        self.owner = owner or f"ai@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runner = ModelRunner(registry, threads=settings.threads)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ai-worker", daemon=True)

    # ------------------------------------------------------------------ the loop

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.model_timeout_s + 10)
        self.runner.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except IndexUnavailable as exc:
                log.warning("ai.index_unavailable", error=str(exc))
            except Exception:  # the worker must outlive any one bad job
                log.exception("ai.worker_pass_failed")
            self._stop.wait(self.settings.poll_s)

    def run_once(self, now: datetime | None = None) -> bool:
        """Take and pre-screen one due job; ``False`` when there was none. A job that fails is
        given back to be retried (or stopped, its budget spent, and the study handed over)."""
        job = take_leased(
            self.services.sessions, pacs_events.JOB_AI_PRESCREEN, owner=self.owner, lease=self._lease, now=now
        )
        if job is None:
            return False
        study_uid = str(job.payload.get("study_uid", ""))
        try:
            self.prescreen(job, study_uid)
        except LeaseLost as exc:
            log.warning("ai.lease_lost", job_id=job.id, study_uid=study_uid, error=str(exc))
        except Exception as exc:
            log.exception("ai.job_failed", job_id=job.id, study_uid=study_uid)
            self._give_back(job, study_uid, f"{type(exc).__name__}: {exc}")
        return True

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_s)

    # ------------------------------------------------------------------ one job

    def prescreen(self, job: Job, study_uid: str) -> None:
        """Pre-screen one study for a job this worker holds. Raises what should retry the job
        (``IndexUnavailable``, ``StoreUnavailable``, ``ResultsUnavailable``, unreadable data)."""
        try:
            with transaction(self.services.sessions, read_only=True) as session:
                study = study_input(session, self.services.store, study_uid)
        except StudyGone as exc:
            self._record(job, study_uid, [], skipped=str(exc))
            return
        entries = self.registry.applicable(study)
        outcomes: list[ModelOutcome] = []
        for entry in entries:
            outcome = self.runner.run(entry, study, entry.timeout_s or self.settings.model_timeout_s)
            log.info(
                f"ai.{outcome.status}",
                study_uid=study_uid,
                model=entry.name,
                version=entry.version,
                reason=outcome.reason or None,
                seconds=round(outcome.seconds, 2),
            )
            outcomes.append(outcome)
            extend_lease(self.services.sessions, job.id, owner=self.owner, lease=self._lease)
        stored: list[dict[str, Any]] = []
        if self.settings.dicom_results and any(s.instances for s in study.series):
            stored = self._store_results(study, outcomes, job)
        skipped = None if entries else _nothing_applies(study)
        self._record(job, study_uid, outcomes, skipped=skipped, stored=stored)

    def _store_results(self, study: StudyInput, outcomes: list[ModelOutcome], job: Job) -> list[dict[str, Any]]:
        """Ingest the SR and heat maps as new series of the study, from a temp file each (the
        ingest's interface), marked derived so they do not re-open the study."""
        with transaction(self.services.sessions, read_only=True) as session:
            site_id = session.scalar(select(Study.site_id).where(Study.study_uid == study.study_uid))
        if site_id is None:
            return []
        origin = Origin(site_id=site_id, calling_ae=AI_CALLING_AE, source_address=None, derived=True)
        stored = []
        with tempfile.TemporaryDirectory(prefix="yunying-ai-") as folder:
            for number, derived in enumerate(prescreen_objects(study, outcomes, job_id=job.id, when=job.created_at)):
                path = Path(folder) / f"{number}.dcm"
                derived.dataset.save_as(path, enforce_file_format=True)
                outcome = _ingest(self.services.ingest, path, origin)
                if outcome.kind is OutcomeKind.UNAVAILABLE:
                    raise ResultsUnavailable(f"could not store the pre-screen {derived.kind}: {outcome.reason}")
                stored.append(
                    {
                        "kind": derived.kind,
                        "sop_instance_uid": outcome.sop_instance_uid,
                        "series_uid": str(derived.dataset.SeriesInstanceUID),
                        "outcome": str(outcome.kind),
                        **({"reason": outcome.reason} if not outcome.accepted else {}),
                    }
                )
        return stored

    def _record(
        self,
        job: Job,
        study_uid: str,
        outcomes: Sequence[ModelOutcome],
        *,
        skipped: str | None = None,
        stored: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Findings, one change per model, the results stored, the job done and the hand-off
        to reading: one transaction, so reading never sees a half-recorded pre-screen. Raises
        ``LeaseLost`` (everything rolled back) when another worker took the job meanwhile."""
        now = utcnow()
        with transaction(self.services.sessions) as session:
            finish_leased(session, job.id, owner=self.owner, now=now)
            site_id, state = _study_site_and_state(session, study_uid)
            flags: list[dict[str, Any]] = []
            for outcome in outcomes:
                flags += _record_outcome(session, outcome, study_uid, site_id, job.id, self.owner, now)
            if skipped is not None:
                append_change(
                    session, events.AI_SKIPPED, study_uid=study_uid, site_id=site_id, actor=self.owner, reason=skipped
                )
            if stored:
                append_change(
                    session,
                    events.AI_RESULTS_STORED,
                    study_uid=study_uid,
                    site_id=site_id,
                    actor=self.owner,
                    objects=list(stored),
                )
            if state != StudyState.STABLE:
                # Images arrived while the models ran: the study turns stable again and its
                # next job hands it over with findings on all of its images.
                log.info("ai.study_reopened", study_uid=study_uid)
                return
            payload = triage_payload(outcomes, flags, unvalidated_triage=self.settings.unvalidated_triage)
            mark_ready_for_reading(
                session, study_uid, reason=_handoff_reason(outcomes, skipped), actor=self.owner, ai=payload, now=now
            )

    def _give_back(self, job: Job, study_uid: str, error: str) -> None:
        """Count a failed attempt; once the budget is spent, say so and hand the study over."""
        try:
            given = fail_leased(
                self.services.sessions,
                job.id,
                error,
                owner=self.owner,
                backoff=timedelta(seconds=self.settings.retry_backoff_s),
            )
        except LeaseLost:
            return
        if given.state != JobState.FAILED:
            return
        reason = f"pre-screen gave up after {given.attempts} attempt(s): {error}"
        with transaction(self.services.sessions) as session:
            site_id, state = _study_site_and_state(session, study_uid)
            append_change(
                session, events.AI_FAILED, study_uid=study_uid, site_id=site_id, actor=self.owner, reason=reason
            )
            if state == StudyState.STABLE:
                mark_ready_for_reading(
                    session,
                    study_uid,
                    reason=reason,
                    actor=self.owner,
                    ai={"validated": False, "priority": None, "flags": []},
                )


def _ingest(ingest: Ingest, path: Path, origin: Origin) -> Any:
    try:
        return ingest.receive(path, origin)
    except StoreUnavailable as exc:  # receive() reports it as an outcome; belt and braces
        raise ResultsUnavailable(str(exc)) from exc


def _study_site_and_state(session: Session, study_uid: str) -> tuple[int | None, str | None]:
    row = session.execute(select(Study.site_id, Study.state).where(Study.study_uid == study_uid)).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _record_outcome(
    session: Session, outcome: ModelOutcome, study_uid: str, site_id: int | None, job_id: int, actor: str, now: datetime
) -> list[dict[str, Any]]:
    """One model's findings as rows and its change; returns the flags reading shows."""
    entry = outcome.entry
    if outcome.status != "done":
        kind = events.AI_FAILED if outcome.status == "failed" else events.AI_SKIPPED
        append_change(
            session,
            kind,
            study_uid=study_uid,
            site_id=site_id,
            actor=actor,
            model=entry.name,
            version=entry.version,
            reason=outcome.reason,
        )
        return []
    flags = []
    for finding in outcome.findings:
        row = AiFinding(
            study_uid=study_uid,
            site_id=site_id,
            job_id=job_id,
            model=finding.model,
            version=finding.version,
            label=finding.label,
            probability=finding.probability,
            positive=finding.positive,
            location=[
                {"sop_instance_uid": loc.sop_instance_uid, "frame": loc.frame, "box": loc.box}
                for loc in finding.locations
            ],
            suggested_triage=str(finding.suggested_triage) if finding.suggested_triage else None,
            validated=entry.clinically_validated,
            explanation=finding.explanation,
            created_at=now,
        )
        session.add(row)
        session.flush()
        # A rule's negatives (one per rule) would bury the worklist; a model's are worth seeing.
        if finding.positive or entry.kind != "rules":
            flags.append(
                {
                    "finding_id": row.id,
                    "label": finding.label,
                    "probability": finding.probability,
                    "model": finding.model,
                    "version": finding.version,
                    "positive": finding.positive,
                    "explanation": finding.explanation,
                    "suggested_triage": row.suggested_triage,
                    "validated": entry.clinically_validated,
                }
            )
    append_change(
        session,
        events.AI_DONE,
        study_uid=study_uid,
        site_id=site_id,
        actor=actor,
        model=entry.name,
        version=entry.version,
        findings=len(outcome.findings),
        positives=sum(f.positive for f in outcome.findings),
        seconds=round(outcome.seconds, 3),
    )
    return flags


def triage_payload(
    outcomes: Sequence[ModelOutcome], flags: list[dict[str, Any]], *, unvalidated_triage: bool
) -> dict[str, Any]:
    """What reading receives (``mark_ready_for_reading``'s ``ai``): the highest priority a
    validated model's positive suggests (``validated: true``); failing that, an unvalidated
    model's (``validated: false``: reading applies it in demo mode only), unless
    ``unvalidated_triage`` is off."""
    validated: Triage | None = None
    advisory: Triage | None = None
    for outcome in outcomes:
        for finding in outcome.findings:
            if not finding.positive or finding.suggested_triage is None:
                continue
            if outcome.entry.clinically_validated:
                validated = _higher(validated, finding.suggested_triage)
            else:
                advisory = _higher(advisory, finding.suggested_triage)
    if validated is not None:
        return {"priority": str(validated), "validated": True, "flags": flags}
    chosen = advisory if unvalidated_triage else None
    return {"priority": str(chosen) if chosen else None, "validated": False, "flags": flags}


def _higher(current: Triage | None, candidate: Triage) -> Triage:
    if current is None or _TRIAGE_RANK[candidate] > _TRIAGE_RANK[current]:
        return candidate
    return current


def _nothing_applies(study: StudyInput) -> str:
    if not any(s.instances for s in study.series):
        return f"no CT, DX or CR image in the study (modality {study.modality or 'unknown'})"
    return f"no registered model reads {study.modality} {study.body_part or '(body part unknown)'}"


def _handoff_reason(outcomes: Sequence[ModelOutcome], skipped: str | None) -> str:
    if skipped is not None:
        return f"AI pre-screen skipped: {skipped}"
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "failed", "skipped")}
    return "AI pre-screen: " + ", ".join(f"{n} model(s) {status}" for status, n in counts.items() if n)
