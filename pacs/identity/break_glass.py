"""Break-glass: a reader opens one study beyond the sites he reads for, in an emergency, with a
reason. The opening expires, is an event in the change log and a record in the access audit,
and QA reviews every one (issue E)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs import events
from pacs.identity.sites import IdentityError
from pacs.index.db import append_change
from pacs.index.models import BreakGlass, Study


class UnknownStudy(IdentityError):
    """No such study in the index."""


MIN_REASON: Final = 10  # characters: "emergency" alone is not a reason a reviewer can check
DEFAULT_HOURS: Final = 8


def open_study(
    session: Session,
    *,
    user_id: int,
    username: str,
    study_uid: str,
    reason: str,
    now: datetime,
    hours: int = DEFAULT_HOURS,
) -> BreakGlass:
    """Open ``study_uid`` to the user for ``hours``. Raises ``IdentityError`` for a short reason
    or an unknown study (the answer names neither the site nor the patient)."""
    reason = reason.strip()
    if len(reason) < MIN_REASON:
        raise IdentityError(
            f"say why you need this study (at least {MIN_REASON} characters); QA reviews every break-glass"
        )
    site_id = session.scalar(select(Study.site_id).where(Study.study_uid == study_uid))
    if site_id is None:
        raise UnknownStudy(f"no study {study_uid} here")
    opened = BreakGlass(
        user_id=user_id, study_uid=study_uid, reason=reason, opened_at=now, expires_at=now + timedelta(hours=hours)
    )
    session.add(opened)
    session.flush()
    append_change(
        session,
        events.BREAK_GLASS_OPENED,
        study_uid=study_uid,
        site_id=site_id,
        actor=username,
        break_glass_id=opened.id,
        reason=reason,
        expires_at=opened.expires_at.isoformat(),
    )
    return opened
