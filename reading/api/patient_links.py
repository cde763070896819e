"""``/api/patient-links``: the readers' decisions on probable matches (pacs/patient_links.py),
for the QA staff and admins of a consortium — who decided that two registrations are, or are not,
the same person, and why — and the way back: withdrawing a decision makes the pair probable
again. A rejection hides the other registration's studies from every reader, so a wrong one must
be undoable by someone who is not the reader. Both routes are audited (they show patients)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from pacs.dicomweb.auth import client_address, services_of
from pacs.identity.users import Principal
from pacs.index.models import Patient, PatientLink, Site
from pacs.patient_links import REASON_MAX, LinkDecision, list_links, withdraw_link
from reading.api.deps import QaCaller, unit_of_work
from reading.errors import NotFound

router = APIRouter(prefix="/patient-links", tags=["priors"])

LinkId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class WithdrawBody(BaseModel):
    reason: str | None = Field(default=None, max_length=REASON_MAX)


def _patient_json(patient: Patient, sites: dict[int, str]) -> dict[str, Any]:
    return {
        "site": sites.get(patient.site_id, ""),
        "patient_id": patient.patient_id,
        "name": patient.patient_name,
        "birth_date": patient.birth_date,
        "sex": patient.sex,
    }


@router.get("")
def get_links(
    request: Request,
    who: QaCaller,
    decision: Annotated[LinkDecision | None, Query(description="confirmed or rejected; both when absent")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[dict[str, Any]]:
    """The decisions of the caller's consortium (an installation admin's: all), newest first."""
    with unit_of_work(request, read_only=True) as session:
        rows = list_links(session, who.consortium_id, decision, limit=limit)
        site_ids = {p.site_id for _, first, second in rows for p in (first, second)}
        named = session.execute(select(Site.id, Site.name).where(Site.id.in_(site_ids)))
        sites = {site_id: name for site_id, name in named}
        answer = [
            {
                "id": link.id,
                "decision": link.decision,
                "decided_by": link.decided_by,
                "decided_at": link.decided_at.isoformat(),
                "reason": link.reason,
                "patients": [_patient_json(first, sites), _patient_json(second, sites)],
            }
            for link, first, second in rows
        ]
    services_of(request).audit.record(
        who,
        "patient-links",
        source=client_address(request),
        decision=decision.value if decision else None,
        count=len(answer),
    )
    return answer


def _link_in_scope(who: Principal, link: PatientLink | None, link_id: int) -> PatientLink:
    if link is None or (who.consortium_id is not None and link.consortium_id != who.consortium_id):
        raise NotFound(f"no decision {link_id} in your consortium")  # another consortium's: as absent
    return link


@router.post("/{link_id}/withdraw")
def post_withdraw(request: Request, who: QaCaller, link_id: LinkId, body: WithdrawBody) -> dict[str, Any]:
    """Withdraw a decision: the pair is a probable match again for every reader. The change keeps
    what it was, who had decided it and the reason given here."""
    with unit_of_work(request) as session:
        link = _link_in_scope(who, session.get(PatientLink, link_id), link_id)
        was, by, pair = link.decision, link.decided_by, (link.patient_low, link.patient_high)
        second = session.get_one(Patient, link.patient_high)
        patient_id, site_id = second.patient_id, second.site_id
        withdraw_link(session, link, username=who.username, reason=(body.reason or "").strip() or None)
    services_of(request).audit.record(
        who,
        "patient-link.withdraw",
        patient_id=patient_id,
        site_id=site_id,
        source=client_address(request),
        link_id=link_id,
        patients=list(pair),
        previous=was,
        previous_by=by,
    )
    return {"id": link_id, "withdrawn": was, "decided_by": by}
