"""The ``/dicomweb`` router: QIDO-RS searches (PS3.18 10.6). Every route depends on
``Authenticated``; tests/dicomweb/test_routes_need_auth.py fails for one that does not."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.dicomweb.qido import Level, QueryError, parse_query, search
from pacs.dicomweb.refusals import audit_if_refused
from pacs.identity.users import Principal
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Series, Study

DICOM_JSON = "application/dicom+json"
router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])


def _accepts_json(request: Request) -> bool:
    accept = request.headers.get("accept", "*/*")
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(types & {DICOM_JSON, "application/json", "application/*", "*/*"})


def _qido(
    request: Request,
    who: Principal,
    level: Level,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Response:
    if not _accepts_json(request):
        raise HTTPException(406, f"QIDO-RS answers {DICOM_JSON} only; send Accept: {DICOM_JSON}")
    try:
        query = parse_query(level, request.query_params.multi_items(), study_uid=study_uid, series_uid=series_uid)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    services = services_of(request)
    base_url = str(request.base_url).rstrip("/") + router.prefix
    try:
        with transaction(services.sessions, read_only=True) as session:
            if study_uid is not None:
                _require_visible(request, session, who, study_uid, series_uid)
            results = search(session, query, who.scope, base_url=base_url)
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    client = client_address(request)
    services.audit.record(
        who,
        "search",
        study_uid=study_uid,
        source=client,
        level=level,
        query=str(request.query_params)[:500],
        studies=sorted({r.study_uid for r in results})[:100],
        answered=len(results),
    )
    headers = {}
    if query.warnings:
        host = request.url.hostname or "yunying"
        headers["Warning"] = ", ".join(f'299 {host} "{w}"' for w in query.warnings)
    return JSONResponse([r.dataset for r in results], media_type=DICOM_JSON, headers=headers)


def _require_visible(request: Request, session: Any, who: Principal, study_uid: str, series_uid: str | None) -> None:
    """404 for a study (or series) that does not exist or that the caller may not see: the same
    answer for both, so nothing leaks about other sites' studies (the refusal is audited)."""
    site_id = session.scalar(select(Study.site_id).where(Study.study_uid == study_uid))
    if site_id is None or not who.scope.allows(site_id, study_uid):
        if site_id is not None:
            audit_if_refused(
                request, who, "search", study_uid, session=session, level="series" if series_uid is None else "instance"
            )
        raise HTTPException(404, f"no study {study_uid} here")
    if series_uid is not None:
        found = session.scalar(
            select(Series.id)
            .join(Study, Study.id == Series.study_pk)
            .where(Series.series_uid == series_uid, Study.study_uid == study_uid)
        )
        if found is None:
            raise HTTPException(404, f"no series {series_uid} in study {study_uid} here")


@router.get("/studies", summary="QIDO-RS: search for studies")
def search_studies(request: Request, who: Authenticated) -> Response:
    return _qido(request, who, "study")


@router.get("/series", summary="QIDO-RS: search for series")
def search_series(request: Request, who: Authenticated) -> Response:
    return _qido(request, who, "series")


@router.get("/instances", summary="QIDO-RS: search for instances")
def search_instances(request: Request, who: Authenticated) -> Response:
    return _qido(request, who, "instance")


@router.get("/studies/{study_uid}/series", summary="QIDO-RS: search for a study's series")
def search_study_series(request: Request, who: Authenticated, study_uid: str) -> Response:
    return _qido(request, who, "series", study_uid=study_uid)


@router.get("/studies/{study_uid}/instances", summary="QIDO-RS: search for a study's instances")
def search_study_instances(request: Request, who: Authenticated, study_uid: str) -> Response:
    return _qido(request, who, "instance", study_uid=study_uid)


@router.get("/studies/{study_uid}/series/{series_uid}/instances", summary="QIDO-RS: search for a series' instances")
def search_series_instances(request: Request, who: Authenticated, study_uid: str, series_uid: str) -> Response:
    return _qido(request, who, "instance", study_uid=study_uid, series_uid=series_uid)
