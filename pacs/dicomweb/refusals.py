"""Refused study access, audited. A study outside the caller's sites is answered like an absent
one — 404, so nothing leaks about other sites' studies — but when it exists it is recorded as a
denied access (who, which study and patient, what, when, from where), sealed into the audit
chain like every record: a QA officer looking for snooping finds the attempts too.

Only authenticated callers get here (a 401 never does), and a refusal is recorded once per
token or browser session, study and action (``AccessLog.record_once``): a viewer asking for
300 frames of a refused study is one record, like the granted access it would have been.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Request
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import client_address, services_of
from pacs.dicomweb.retrieve import outside_scope
from pacs.identity.users import Principal
from pacs.index.db import IndexUnavailable, transaction

log = structlog.get_logger(__name__)


def audit_if_refused(
    request: Request, who: Principal, action: str, study_uid: str, *, session: Session | None = None, **detail: Any
) -> None:
    """Record a denied ``action`` when ``study_uid`` exists outside ``who``'s scope; nothing for
    an absent study. Looks in ``session`` when given, else in a read transaction of its own."""
    try:
        if session is not None:
            found = outside_scope(session, who.scope, study_uid)
        else:
            with transaction(services_of(request).sessions, read_only=True) as own:
                found = outside_scope(own, who.scope, study_uid)
    except IndexUnavailable as exc:  # the caller answers 404 (or 503) anyway; say what was not written
        log.error("audit.refusal_unchecked", user=who.username, study_uid=study_uid, error=str(exc))
        return
    if found is None:
        return
    site_id, patient_id = found
    services_of(request).audit.record_once(
        who,
        action,
        outcome="denied",
        study_uid=study_uid,
        patient_id=patient_id,
        site_id=site_id,
        source=client_address(request),
        path=request.url.path,
        **detail,
    )
