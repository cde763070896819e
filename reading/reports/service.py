"""Writing, signing and amending reports. A report is written inside a claimed task; signing
ends the task, raises a critical result when flagged, and queues the deliveries back to the
site, all in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.index.db import append_change
from pacs.index.models import Site
from reading import events
from reading.delivery import queue_deliveries
from reading.errors import Conflict, Invalid, NotFound, OutOfScope
from reading.models import (
    CriticalCommunication,
    CriticalResult,
    CriticalState,
    Reader,
    ReadingTask,
    ReadingTier,
    Report,
    ReportStatus,
    TaskState,
)
from reading.reports.templates import TemplateError, validate_fields
from reading.worklist.tasks import _check_holder, get_task, may_read
from reading.worklist.transitions import transition

COMMUNICATION_METHODS: Final = frozenset({"phone", "in-person", "portal", "sms", "wecom"})


@dataclass(frozen=True)
class ReportInput:
    template_id: str
    fields: dict[str, Any]
    findings: str = ""
    impression: str = ""
    critical: bool = False
    referral: str | None = None


def latest_report(session: Session, task_id: int) -> Report | None:
    return session.scalar(select(Report).where(Report.task_id == task_id).order_by(Report.version.desc()).limit(1))


def carried_report(session: Session, task: ReadingTask) -> Report | None:
    """The county's preliminary report an escalated task carries (None for a first-tier task)."""
    if task.escalated_from_id is None:
        return None
    return latest_report(session, task.escalated_from_id)


def _validated(body: ReportInput) -> ReportInput:
    try:
        validate_fields(body.template_id, body.fields)
    except TemplateError as exc:
        raise Invalid(str(exc)) from None
    if len(body.impression) > 20_000 or len(body.findings) > 50_000:
        raise Invalid("findings are limited to 50,000 characters and the impression to 20,000")
    return body


def save_report(
    session: Session, reader: Reader, task_id: int, body: ReportInput, *, preliminary: bool, now: datetime
) -> Report:
    """Save the reader's draft (or, with ``preliminary``, a preliminary report: the task becomes
    ``preliminary``). Raises ``Conflict`` unless the reader holds the task's claim; ``Invalid``
    for an unknown template or field."""
    task = get_task(session, task_id, lock=True)
    _check_holder(task, reader, now)
    _validated(body)
    report = latest_report(session, task.id)
    if report is None:
        report = Report(task_id=task.id, study_uid=task.study_uid, version=1, author_id=reader.id, created_at=now)
        session.add(report)
    elif report.status in {ReportStatus.FINAL, ReportStatus.AMENDED}:
        raise Conflict(f"the report of task {task.id} is signed: write an addendum instead")
    report.template_id = body.template_id
    report.fields = dict(body.fields)
    report.findings, report.impression = body.findings, body.impression
    report.critical, report.referral = body.critical, body.referral
    if preliminary or report.status != ReportStatus.PRELIMINARY:  # a draft save keeps a preliminary one
        report.status = ReportStatus.PRELIMINARY if preliminary else ReportStatus.DRAFT
    report.updated_at = now
    session.flush()
    kind = events.REPORT_PRELIMINARY if preliminary else events.REPORT_SAVED
    append_change(
        session,
        kind,
        study_uid=task.study_uid,
        site_id=task.site_id,
        actor=f"reader:{reader.id}",
        task_id=task.id,
        report_id=report.id,
    )
    if preliminary:
        transition(session, task, TaskState.PRELIMINARY, actor=f"reader:{reader.id}", now=now, report_id=report.id)
    return report


def sign_report(
    session: Session,
    reader: Reader,
    task_id: int,
    body: ReportInput | None,
    *,
    now: datetime,
    critical_ack: timedelta,
    cosign: bool = False,
) -> Report:
    """Sign the task's report (saving ``body`` first when given). A provincial expert may
    ``cosign`` the county preliminary the task carries: its author stays the county reader.
    Raises ``Invalid`` for a report with no impression, ``Conflict`` without the claim."""
    task = get_task(session, task_id, lock=True)
    _check_holder(task, reader, now)
    report = latest_report(session, task.id)
    if cosign:
        carried = carried_report(session, task)
        if carried is None:
            raise Invalid(f"task {task.id} carries no county preliminary report to co-sign")
        if report is None:
            report = Report(
                task_id=task.id,
                study_uid=task.study_uid,
                version=1,
                author_id=carried.author_id,
                created_at=now,
                template_id=carried.template_id,
                fields=dict(carried.fields),
                findings=carried.findings,
                impression=carried.impression,
                critical=carried.critical,
                referral=carried.referral,
            )
            session.add(report)
    if body is not None:
        _validated(body)
        if report is None:
            report = Report(task_id=task.id, study_uid=task.study_uid, version=1, author_id=reader.id, created_at=now)
            session.add(report)
        elif cosign:
            report.author_id = reader.id  # he edited the county text: the words are his
        report.template_id, report.fields = body.template_id, dict(body.fields)
        report.findings, report.impression = body.findings, body.impression
        report.critical, report.referral = body.critical, body.referral
    if report is None:
        raise Invalid(f"task {task.id} has no report to sign: save one first")
    if report.status in {ReportStatus.FINAL, ReportStatus.AMENDED}:
        raise Conflict(f"the report of task {task.id} is signed already")
    if not report.impression.strip():
        raise Invalid("a signed report needs an impression (诊断意见)")
    report.status, report.signer_id, report.signed_at, report.updated_at = ReportStatus.FINAL, reader.id, now, now
    session.flush()
    transition(session, task, TaskState.SIGNED, actor=f"reader:{reader.id}", now=now, report_id=report.id)
    task.new_images = False
    _after_signing(session, task, report, reader, now=now, critical_ack=critical_ack, kind=events.REPORT_SIGNED)
    return report


def _after_signing(
    session: Session,
    task: ReadingTask,
    report: Report,
    reader: Reader,
    *,
    now: datetime,
    critical_ack: timedelta,
    kind: str,
) -> None:
    append_change(
        session,
        kind,
        study_uid=task.study_uid,
        site_id=task.site_id,
        actor=f"reader:{reader.id}",
        task_id=task.id,
        report_id=report.id,
        version=report.version,
        critical=report.critical,
    )
    # One critical result per task: an addendum of a critical report does not alert the site again.
    earlier = select(Report.id).where(Report.task_id == task.id)
    if (
        report.critical
        and session.scalar(select(CriticalResult.id).where(CriticalResult.report_id.in_(earlier))) is None
    ):
        critical = CriticalResult(
            report_id=report.id,
            study_uid=task.study_uid,
            site_id=task.site_id,
            state=CriticalState.OPEN,
            raised_at=now,
            ack_due_at=now + critical_ack,
        )
        session.add(critical)
        session.flush()
        append_change(
            session,
            events.CRITICAL_RAISED,
            study_uid=task.study_uid,
            site_id=task.site_id,
            actor=f"reader:{reader.id}",
            report_id=report.id,
            critical_id=critical.id,
            ack_due_at=critical.ack_due_at.isoformat(),
        )
    site = session.get_one(Site, task.site_id)
    queue_deliveries(session, report, site, now=now)


def add_addendum(
    session: Session,
    reader: Reader,
    task_id: int,
    text: str,
    *,
    now: datetime,
    critical_ack: timedelta,
    critical: bool | None = None,
) -> Report:
    """A new signed version of a signed report with ``text`` appended; the site gets it again.
    Any reader of the task's tier who may read it may write one (the signer may be off duty)."""
    task = get_task(session, task_id, lock=True)
    why = may_read(session, reader, task, now=now)
    if why is not None:
        raise OutOfScope(why)
    if task.state not in {TaskState.SIGNED, TaskState.AMENDED}:
        raise Conflict(f"task {task.id} is {task.state}: an addendum follows a signed report")
    if not text.strip():
        raise Invalid("an addendum needs text")
    last = latest_report(session, task.id)
    if last is None:
        raise NotFound(f"task {task.id} has no report")
    report = Report(
        task_id=task.id,
        study_uid=task.study_uid,
        version=last.version + 1,
        status=ReportStatus.AMENDED,
        template_id=last.template_id,
        fields=dict(last.fields),
        findings=last.findings,
        impression=last.impression,
        critical=last.critical if critical is None else critical,
        referral=last.referral,
        addendum=text,
        author_id=reader.id,
        signer_id=reader.id,
        signed_at=now,
        amends_id=last.id,
        created_at=now,
        updated_at=now,
    )
    session.add(report)
    session.flush()
    transition(session, task, TaskState.AMENDED, actor=f"reader:{reader.id}", now=now, report_id=report.id)
    task.new_images = False
    _after_signing(session, task, report, reader, now=now, critical_ack=critical_ack, kind=events.REPORT_ADDENDUM)
    return report


def record_communication(
    session: Session, reader: Reader, report_id: int, *, told: str, method: str, at: datetime, now: datetime
) -> CriticalCommunication:
    """Record who at the site was told of a critical result (危急值), how and when."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}")
    task = session.get_one(ReadingTask, report.task_id)
    why = may_read(session, reader, task, now=now)
    if why is not None and report.author_id != reader.id and report.signer_id != reader.id:
        raise OutOfScope(why)
    if not report.critical:
        raise Invalid(f"report {report_id} is not flagged critical")
    if method not in COMMUNICATION_METHODS:
        raise Invalid(f"method must be one of {', '.join(sorted(COMMUNICATION_METHODS))}, not {method!r}")
    if not told.strip():
        raise Invalid("say who was told (name and role at the site)")
    if at > now + timedelta(minutes=5):
        raise Invalid("the communication time is in the future")
    row = CriticalCommunication(
        report_id=report_id, told=told.strip(), method=method, at=at, recorded_by=f"reader:{reader.id}", recorded_at=now
    )
    session.add(row)
    session.flush()
    append_change(
        session,
        events.CRITICAL_COMMUNICATED,
        study_uid=report.study_uid,
        site_id=task.site_id,
        actor=f"reader:{reader.id}",
        report_id=report_id,
        method=method,
        at_time=at.isoformat(),
    )
    return row


def acknowledge_critical(session: Session, critical_id: int, *, site_id: int, by: str, now: datetime) -> CriticalResult:
    """The site confirms it saw a critical result. Another site's result is not found."""
    critical = session.get(CriticalResult, critical_id)
    if critical is None or critical.site_id != site_id:
        raise NotFound(f"no critical result {critical_id} for your site")
    if critical.state == CriticalState.ACKNOWLEDGED:
        return critical
    critical.state, critical.acknowledged_at, critical.acknowledged_by = CriticalState.ACKNOWLEDGED, now, by
    append_change(
        session,
        events.CRITICAL_ACKNOWLEDGED,
        study_uid=critical.study_uid,
        site_id=site_id,
        actor=by,
        critical_id=critical.id,
        report_id=critical.report_id,
    )
    return critical


def is_provincial_cosign(task: ReadingTask) -> bool:
    return task.tier == ReadingTier.PROVINCIAL and task.escalated_from_id is not None
