"""``/api/edge/manifests/{study}``: a clinic edge tells the centre what a study holds, and
learns what the centre still lacks (pacs/completeness.py says why this is an API call and not
DICOM Storage Commitment). Only a site's own token may send its manifests."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from pacs.completeness import ManifestCheck, ManifestRefused, check, record_manifest
from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.identity.users import Principal
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Role, StudyManifest
from pacs.index.types import utcnow

router = APIRouter(prefix="/api/edge", tags=["edge"])
UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"


class ManifestBody(BaseModel):
    # SOP Instance UID → content digest (lowercase hex sha256) of the data set after group 0002
    # in native form: pacs/lossless.py (for a native instance, its sha256 as sent).
    instances: dict[str, str] = Field(min_length=1)


def _site_of(who: Principal) -> int:
    own = who.scope.site_ids or frozenset()
    if who.role != Role.SITE or len(own) != 1:
        raise HTTPException(403, "only a site's own token (a site service account) sends its edge's manifests")
    return next(iter(own))


def _answer(result: ManifestCheck) -> dict[str, Any]:
    return {
        "study_uid": result.study_uid,
        "expected": result.expected,
        "satisfied": result.satisfied,
        "missing": result.missing,
        "mismatched": result.mismatched,
    }


@router.put("/manifests/{study_uid}", summary="The edge's manifest of a study; answers what is missing")
async def put_manifest(request: Request, who: Authenticated, study_uid: str, body: ManifestBody) -> dict[str, Any]:
    if len(study_uid) > 64 or not re.match(UID_PATTERN, study_uid):
        raise HTTPException(400, f"{study_uid[:64]!r} is not a UID")
    site_id = _site_of(who)
    services = services_of(request)

    def record() -> ManifestCheck:
        with transaction(services.sessions) as session:
            return record_manifest(
                session, site_id=site_id, study_uid=study_uid, instances=body.instances, now=utcnow()
            )

    try:
        result = await run_in_threadpool(record)
    except ManifestRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    services.audit.record(
        who,
        "manifest",
        study_uid=study_uid,
        site_id=site_id,
        source=client_address(request),
        expected=result.expected,
        missing=len(result.missing),
    )
    return _answer(result)


@router.get("/manifests/{study_uid}", summary="Whether the centre holds everything the edge's manifest lists")
def get_manifest(request: Request, who: Authenticated, study_uid: str) -> dict[str, Any]:
    site_id = _site_of(who)
    services = services_of(request)
    with transaction(services.sessions, read_only=True) as session:
        manifest = session.scalar(select(StudyManifest).where(StudyManifest.study_uid == study_uid))
        if manifest is None or manifest.site_id != site_id:
            raise HTTPException(404, f"no manifest of study {study_uid} from your site")
        return _answer(check(session, manifest))
