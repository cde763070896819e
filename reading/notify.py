"""Telling people about critical results (危急值): a notifier is anything with ``notify``. The
default writes an alert the site sees on its portal (``GET /api/site/alerts``) and the log;
SMS or WeCom adapters plug in by setting ``YUNYING_CRITICAL_NOTIFIERS`` to their import paths
(``package.module:Class``, built with no arguments). The reading sweeper calls them outside any
transaction, once per critical result and step, and records that it did."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.db import transaction
from pacs.index.models import Alert

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CriticalNotice:
    """What a notifier is told: the step (``raised`` to the site, ``escalated`` to the centre's
    duty officer), whom it concerns, and the impression — never the patient's full name."""

    step: str  # raised | escalated
    critical_id: int
    report_id: int
    study_uid: str
    site_id: int
    impression: str
    ack_due_at: datetime


class CriticalNotifier(Protocol):
    def notify(self, notice: CriticalNotice) -> None: ...


class PortalNotifier:
    """An alert row: the site portal's banner (raised) or the centre's duty board (escalated)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def notify(self, notice: CriticalNotice) -> None:
        if notice.step == "raised":
            message = (
                f"危急值 critical result for study {notice.study_uid}: {notice.impression[:200]} — acknowledge by "
                f"{notice.ack_due_at:%Y-%m-%d %H:%M} UTC (POST /api/site/critical/{notice.critical_id}/ack)"
            )
        else:
            message = (
                f"critical result of report {notice.report_id} not acknowledged by the site by "
                f"{notice.ack_due_at:%Y-%m-%d %H:%M} UTC: call the site"
            )
        with transaction(self.sessions) as session:
            session.add(
                Alert(
                    kind=f"critical.{notice.step}", site_id=notice.site_id, study_uid=notice.study_uid, message=message
                )
            )
        log.warning("critical.notified", step=notice.step, critical_id=notice.critical_id, site=notice.site_id)


def load_notifiers(paths: Sequence[str], sessions: sessionmaker[Session]) -> list[CriticalNotifier]:
    """The portal notifier plus each configured adapter. Raises ``ValueError`` naming a path
    that does not import or has no ``notify``."""
    notifiers: list[CriticalNotifier] = [PortalNotifier(sessions)]
    for path in paths:
        module_name, _, class_name = path.partition(":")
        try:
            notifier = getattr(importlib.import_module(module_name), class_name)()
        except (ImportError, AttributeError, TypeError) as exc:
            raise ValueError(f"critical notifier {path!r} cannot be built: {exc} (form: package.module:Class)") from exc
        if not callable(getattr(notifier, "notify", None)):
            raise ValueError(f"critical notifier {path!r} has no notify(notice) method")
        notifiers.append(notifier)
    return notifiers
