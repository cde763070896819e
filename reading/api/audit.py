"""``/api/audit``: search and export the access audit ("who opened patient X"), and check its
hash chain — for QA staff and admins. A consortium's QA staff and admins see the records of
their consortium's sites; records of no site (installation-wide changes) only the installation's.
Searching the audit is itself audited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from pacs.audit_chain import AuditKey, Search, export_lines, record_json, search, verify
from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.identity.users import Principal
from pacs.index.db import transaction
from pacs.index.models import Role
from reading.api.deps import AdminCaller, require_role, unit_of_work
from reading.errors import Invalid
from reading.qa.service import parse_day

router = APIRouter(prefix="/audit", tags=["audit"])


PatientId = Annotated[str | None, Query(max_length=64, description="a patient ID as its site issued it")]
StudyUid = Annotated[str | None, Query(max_length=64, pattern=r"^[0-9.]+$")]
User = Annotated[str | None, Query(max_length=64, description="a username; cli:LOGIN for command-line changes")]
Action = Annotated[str | None, Query(max_length=32, description="e.g. retrieve, metadata, open-task, site.created")]
Outcome = Annotated[str | None, Query(pattern="^(success|denied|not-found|error)$")]
Since = Annotated[str | None, Query(description="first UTC day, e.g. 2026-10-01")]
Until = Annotated[str | None, Query(description="last UTC day (inclusive)")]


@dataclass(frozen=True)
class Filters:
    """The search filters both routes take, as given (checked by ``query`` after the role)."""

    patient_id: PatientId = None
    study_uid: StudyUid = None
    user: User = None
    action: Action = None
    outcome: Outcome = None
    since: Since = None
    until: Until = None

    def query(self, who: Principal) -> Search:
        """Raises ``Invalid`` for a bad day or a range that ends before it starts."""
        first, last = parse_day(self.since, "since"), parse_day(self.until, "until")
        if first and last and last < first:
            raise Invalid("until is before since")
        return Search(
            patient_id=self.patient_id or None,
            study_uid=self.study_uid or None,
            username=self.user or None,
            action=self.action or None,
            outcome=self.outcome or None,
            start=datetime(first.year, first.month, first.day, tzinfo=UTC) if first else None,
            end=datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1) if last else None,
            site_ids=who.scope.site_ids,
        )


AuditFilters = Annotated[Filters, Depends()]


@router.get("")
def get_audit(
    request: Request,
    who: Authenticated,
    filters: AuditFilters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, description="the last id of the previous page")] = None,
) -> dict[str, Any]:
    """Matching records, newest first (who, role, action, patient, study, when, from where, outcome)."""
    _require_auditor(request, who, "audit.search", filters)
    with unit_of_work(request, read_only=True) as session:
        query = filters.query(who)
        found = search(session, query, limit=limit, before_id=before_id)
        records = [record_json(r) for r in found]
    _audit_search(request, who, "audit.search", query, len(records))
    return {"records": records, "next_before_id": records[-1]["id"] if len(records) == limit else None}


@router.get("/export")
def get_audit_export(request: Request, who: Authenticated, filters: AuditFilters) -> StreamingResponse:
    """Matching records as JSON lines, oldest first, with their chain place and digest."""
    _require_auditor(request, who, "audit.export", filters)
    try:
        query = filters.query(who)
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from None
    sessions = services_of(request).sessions
    _audit_search(request, who, "audit.export", query, None)

    def lines() -> Iterator[bytes]:
        with transaction(sessions, read_only=True) as session:
            for line in export_lines(session, query):
                yield (line + "\n").encode()

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="yunying-audit.jsonl"'},
    )


@router.get("/verify")
def get_audit_verify(request: Request, who: AdminCaller) -> dict[str, Any]:
    """Walk the whole hash chain (installation admins only: it reads every site's records)."""
    if who.scope.site_ids is not None:
        raise HTTPException(
            403, "only an installation admin verifies the whole chain: ask yours, or run `yunying audit verify`"
        )
    key = AuditKey.from_settings(services_of(request).settings)
    with unit_of_work(request, read_only=True) as session:
        verdict = verify(session, key)
    return {
        "intact": verdict.intact,
        "checked": verdict.checked,
        "first": verdict.first,
        "last": verdict.last,
        "unsealed": verdict.unsealed,
        "problems": [str(p) for p in verdict.problems],
    }


def _require_auditor(request: Request, who: Principal, action: str, filters: Filters) -> None:
    """QA staff or admins only; a refused look into the audit is itself recorded (denied)."""
    if who.role not in (Role.QA, Role.ADMIN):
        source = client_address(request)
        services_of(request).audit.record(
            who, action, outcome="denied", patient_id=filters.patient_id, study_uid=filters.study_uid, source=source
        )
    require_role(who, Role.QA, Role.ADMIN)


def _audit_search(request: Request, who: Principal, action: str, query: Search, answered: int | None) -> None:
    services_of(request).audit.record(
        who,
        action,
        patient_id=query.patient_id,
        study_uid=query.study_uid,
        source=client_address(request),
        user=query.username,
        answered=answered,
    )
