"""``/api/break-glass``: a reader opens one study beyond the sites he reads for, with a reason;
QA and admins list the openings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from pacs.dicomweb.auth import client_address, services_of
from pacs.identity.break_glass import UnknownStudy, open_study
from pacs.identity.sites import IdentityError
from pacs.index.models import BreakGlass, Study, User
from pacs.index.types import utcnow
from reading.api.deps import QaCaller, ReaderCaller, unit_of_work

router = APIRouter(tags=["access"])


class BreakGlassBody(BaseModel):
    study_uid: str = Field(min_length=1, max_length=64, pattern=r"^[0-9.]+$")
    reason: str = Field(max_length=2000)


@router.post("/break-glass", status_code=201)
def post_break_glass(request: Request, who: ReaderCaller, body: BreakGlassBody) -> dict[str, Any]:
    """Open a study beyond your sites for 8 hours. Audited; QA reviews every opening."""
    assert who.user_id is not None  # a reader is a user
    with unit_of_work(request) as session:
        try:
            opened = open_study(
                session,
                user_id=who.user_id,
                username=who.username,
                study_uid=body.study_uid,
                reason=body.reason,
                now=utcnow(),
            )
        except UnknownStudy as exc:
            raise HTTPException(404, str(exc)) from None
        except IdentityError as exc:
            raise HTTPException(422, str(exc)) from None
        site_id = session.scalar(select(Study.site_id).where(Study.study_uid == body.study_uid))
        answer = {"id": opened.id, "study_uid": opened.study_uid, "expires_at": opened.expires_at.isoformat()}
    client = client_address(request)
    services_of(request).audit.record(
        who, "break-glass", study_uid=body.study_uid, site_id=site_id, source=client, reason=body.reason
    )
    return answer


@router.get("/break-glass")
def list_break_glass(
    request: Request, who: QaCaller, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    """Every break-glass opening, newest first (QA and admins of the studies' sites)."""
    with unit_of_work(request, read_only=True) as session:
        rows = session.execute(
            select(BreakGlass, User.username, Study.site_id)
            .join(User, User.id == BreakGlass.user_id)
            .join(Study, Study.study_uid == BreakGlass.study_uid)
            .where(*([] if who.scope.site_ids is None else [Study.site_id.in_(sorted(who.scope.site_ids))]))
            .order_by(BreakGlass.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "id": b.id,
                "user": username,
                "study_uid": b.study_uid,
                "reason": b.reason,
                "opened_at": b.opened_at.isoformat(),
                "expires_at": b.expires_at.isoformat(),
            }
            for b, username, _site_id in rows
        ]
