"""The access audit: one record per access to patient data (who, role, action, study or
patient, when, from where, outcome), in the spirit of IHE ATNA. Issue E hash-chains and
reports on these rows.

One record per principal, study and action: a search is one record for the query (with the
number of studies answered), a study's retrieval one record — never one per frame.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from pacs.identity.users import Principal
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import AccessRecord
from pacs.index.types import utcnow

log = structlog.get_logger(__name__)


def record_access(
    sessions: sessionmaker[Session],
    principal: Principal,
    action: str,
    *,
    outcome: str = "success",
    study_uid: str | None = None,
    patient_id: str | None = None,
    site_id: int | None = None,
    source: str | None = None,
    **detail: Any,
) -> None:
    """Write one access record in its own transaction. An index outage is logged, not raised:
    the request that caused it has already been answered from the same index."""
    try:
        with transaction(sessions) as session:
            session.add(
                AccessRecord(
                    at=utcnow(),
                    user_id=principal.user_id,
                    username=principal.username,
                    role=principal.role,
                    action=action,
                    study_uid=study_uid,
                    patient_id=patient_id,
                    site_id=site_id,
                    source=source,
                    outcome=outcome,
                    detail=detail,
                )
            )
    except IndexUnavailable as exc:
        log.error("audit.unwritten", user=principal.username, action=action, study_uid=study_uid, error=str(exc))
