"""STOW-RS (PS3.18 10.5): ``POST /dicomweb/studies[/{study}]`` with a ``multipart/related;
type="application/dicom"`` body, each part through the same ``Ingest.receive`` as C-STORE.

Order, chosen so that nothing is stored half-way:

1. who may store, for which site (before a byte of the body is read);
2. the whole body is spooled to disk part by part (``multipart.PartSpooler``): a body that
   breaks off or is framed wrongly is refused as a whole (400/413/415) and *no* part of it is
   ingested — a sender that lost its connection simply sends the request again;
3. each complete part is admitted like a DIMSE presentation context would be (transfer syntax,
   SOP class) and checked against the study of the path, then ingested; the outcome of each is
   reported per instance (PS3.18 I.1). Refused parts leave nothing in the index or the store,
   except what ``Ingest`` keeps aside on purpose (the quarantine of malformed data, as for
   C-STORE).

The outcome → response mapping is the one table ``OUTCOME_ANSWER`` plus ``http_status`` below.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import pydicom
import structlog
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from pacs.audit import record_access
from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.dicomweb.multipart import BodyRefused, PartSpooler, SpooledPart, parse_content_type
from pacs.dimse.contexts import ACCEPTED_TRANSFER_SYNTAXES, receiver_contexts
from pacs.dimse.statuses import c_store_status
from pacs.identity.users import Principal
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Instance, Role, Series, Site, SiteAE, Study
from pacs.ingest import IngestOutcome, Origin, OutcomeKind
from pacs.service import Services

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])
DICOM_JSON = "application/dicom+json"
RETRY_AFTER_S = "30"
VERIFICATION: Final = "1.2.840.10008.1.1"  # PS3.4 A.4: a SOP class of C-ECHO, not of storage

# PS3.18 I.2.2 Failure Reason (0008,1197) — the PS3.4 B.2.3 C-STORE categories plus three of its own.
OUT_OF_RESOURCES: Final = 0xA700
PROCESSING_FAILURE: Final = 0x0110
SOP_CLASS_NOT_SUPPORTED: Final = 0x0122
TRANSFER_SYNTAX_NOT_SUPPORTED: Final = 0xC122
# A9xx "does not conform to the request": the instance is not of the study the path names.
# PS3.18 has no code of its own for this; 0xA901 is what Microsoft's DICOM server answers too.
STUDY_UID_MISMATCH: Final = 0xA901
# PS3.7 C.5.8 "Duplicate SOP Instance": the UID is already stored with other pixel data.
DUPLICATE_SOP_INSTANCE: Final = 0x0111
# PS3.18 I.2.1 allows implementation codes for Warning Reason (0008,1196): this one says the
# instance was stored as a new version (same pixels, corrected header); the previous is kept.
NEW_VERSION_STORED: Final = 0xB001


@dataclass(frozen=True)
class Answer:
    """How one ingest outcome is reported. ``failure=None`` on a refusal means: the C-STORE
    status of the same outcome (``c_store_status``), so a site sees one code for one problem
    whether it sent by DIMSE or by STOW."""

    stored: bool
    failure: int | None = None
    warning: int | None = None


OUTCOME_ANSWER: Final[dict[OutcomeKind, Answer]] = {
    OutcomeKind.STORED: Answer(stored=True),
    OutcomeKind.DUPLICATE: Answer(stored=True),  # re-sending is harmless: stored once, answered again
    OutcomeKind.NEW_VERSION: Answer(stored=True, warning=NEW_VERSION_STORED),
    # C-STORE answers Success here so that a modality does not retry for ever; an HTTP client
    # is told the truth: this copy was not stored (it is quarantined, the first copy kept).
    OutcomeKind.CONFLICT: Answer(stored=False, failure=DUPLICATE_SOP_INSTANCE),
    OutcomeKind.MALFORMED: Answer(stored=False),  # 0xC000-0xC004 as for C-STORE
    OutcomeKind.INCONSISTENT: Answer(stored=False),  # 0xC005-0xC007 as for C-STORE
    OutcomeKind.UNAVAILABLE: Answer(stored=False, failure=OUT_OF_RESOURCES),
}


@dataclass(frozen=True)
class PartResult:
    """What became of one part; the UIDs are those known (``None`` for a part that is not DICOM)."""

    number: int
    stored: bool
    reason: str
    failure: int | None = None
    warning: int | None = None
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_uid: str | None = None


def http_status(results: Sequence[PartResult]) -> int:
    """PS3.18 10.5.3: 200 all stored, 202 some failed or warned, 409 none stored; 503 when none
    was stored because the store or the index is down (the client should retry the request)."""
    stored = sum(result.stored for result in results)
    if stored == len(results):
        return 202 if any(result.warning for result in results) else 200
    if stored:
        return 202
    if any(result.failure == OUT_OF_RESOURCES for result in results):
        return 503
    return 409


def answer_part(number: int, outcome: IngestOutcome, sop_class_uid: str | None) -> PartResult:
    answer = OUTCOME_ANSWER[outcome.kind]
    failure = None if answer.stored else (answer.failure or c_store_status(outcome))
    return PartResult(
        number,
        answer.stored,
        outcome.reason,
        failure,
        answer.warning,
        sop_class_uid,
        outcome.sop_instance_uid,
        outcome.study_uid,
    )


# ---------------------------------------------------------------- who stores for which site


@dataclass(frozen=True)
class StoringSite:
    site_id: int
    name: str
    assumed_charset: str | None


def storing_site(session: Session, who: Principal, requested: str | None) -> StoringSite:
    """The site a request stores for; ``HTTPException`` (400/403) when the caller may not store.

    A site user or service account stores for its own site. An admin stores only for a site of
    its scope that the request names (``?site=`` id or name): an admin's token is not a site's,
    and filing a study under a guessed site would show one clinic's patient to another.
    Readers and QA never upload.
    """
    if who.role == Role.SITE:
        own = who.scope.site_ids or frozenset()
        if len(own) != 1:
            raise HTTPException(403, f"user {who.username!r} is bound to no site and cannot store")
        site = session.get_one(Site, next(iter(own)))
        if requested is not None and requested not in {str(site.id), site.name}:
            raise HTTPException(403, f"user {who.username!r} stores for {site.name!r} only, not {requested!r}")
    elif who.role == Role.ADMIN:
        if not requested:
            raise HTTPException(
                400,
                "an admin token must name the site it stores for: add ?site=<site id or name> "
                "(see `yunying site list`)",
            )
        site = _administered_site(session, who, requested)
    else:
        raise HTTPException(403, f"role {who.role!r} may not store instances (only site users and admins may)")
    return StoringSite(site.id, site.name, _site_charset(session, site.id))


def _administered_site(session: Session, who: Principal, requested: str) -> Site:
    query = (
        select(Site).where(Site.id == int(requested))
        if requested.isdigit()
        else select(Site).where(Site.name == requested)
    )
    candidates = [site for site in session.scalars(query) if who.scope.allows(site.id)]
    if not candidates:  # unknown and not administered read the same: nothing leaks about other consortiums
        raise HTTPException(403, f"{who.username!r} administers no site {requested!r}")
    if len(candidates) > 1:
        raise HTTPException(400, f"{len(candidates)} sites you administer are named {requested!r}; use the site id")
    return candidates[0]


def _site_charset(session: Session, site_id: int) -> str | None:
    """The character set to assume for data sets that declare none: the one the site's AEs
    agree on. A site's AEs are its modalities; an upload by STOW usually comes from the same
    clinic's PACS holding their images, so their GB18030/GBK habit applies (FIELD-NOTES). An AE
    with no charset is ASCII-only and does not disagree (GB18030 and GBK are ASCII supersets);
    two different charsets do, and then none is assumed rather than a guess."""
    charsets = set(
        session.scalars(
            select(SiteAE.assumed_charset).where(SiteAE.site_id == site_id, SiteAE.assumed_charset.is_not(None))
        )
    )
    return charsets.pop() if len(charsets) == 1 else None


# ---------------------------------------------------------------- admission of one part


# What the C-STORE SCP negotiates is what STOW accepts: one list for both protocols.
STORAGE_SOP_CLASSES: Final = frozenset(str(context.abstract_syntax) for context in receiver_contexts()) - {VERIFICATION}
TRANSFER_SYNTAXES: Final = frozenset(str(uid) for uid in ACCEPTED_TRANSFER_SYNTAXES)


@dataclass(frozen=True)
class Declared:
    """What a part's file meta (group 0002) declares; ``None`` where it is unreadable."""

    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    transfer_syntax_uid: str | None = None


def read_declared(path: Path) -> Declared:
    """Group 0002 only — never the data set, so a deflated part is not inflated here."""
    try:
        meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001 — not Part 10: Ingest says why, in its own words
        return Declared()
    return Declared(
        str(meta.get("MediaStorageSOPClassUID", "") or "") or None,
        str(meta.get("MediaStorageSOPInstanceUID", "") or "") or None,
        str(meta.get("TransferSyntaxUID", "") or "") or None,
    )


def admission_refusal(path: Path, declared: Declared, study_uid: str | None) -> tuple[int, str] | None:
    """(Failure Reason, why) for a part refused before ingest, as a DIMSE negotiation would
    refuse it; ``None`` to ingest it. Nothing is kept of a refused part: the sender holds it."""
    syntax = declared.transfer_syntax_uid
    if syntax == DeflatedExplicitVRLittleEndian:
        return TRANSFER_SYNTAX_NOT_SUPPORTED, (
            "Deflated Explicit VR Little Endian is refused on purpose (a small deflated data set can inflate a "
            "thousandfold in memory); send it uncompressed or JPEG / JPEG 2000 / RLE encoded"
        )
    if syntax is not None and syntax not in TRANSFER_SYNTAXES:
        return TRANSFER_SYNTAX_NOT_SUPPORTED, f"transfer syntax {UID(syntax).name} ({syntax}) is not accepted"
    if declared.sop_class_uid is not None and declared.sop_class_uid not in STORAGE_SOP_CLASSES:
        return SOP_CLASS_NOT_SUPPORTED, f"SOP class {declared.sop_class_uid} is not a storage SOP class accepted here"
    if study_uid is not None:
        try:
            found = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
            part_study = str(found.get("StudyInstanceUID", "") or "") or None
        except Exception:  # noqa: BLE001 — unreadable: Ingest classifies it as malformed
            return None
        if part_study is not None and part_study != study_uid:
            return STUDY_UID_MISMATCH, f"instance belongs to study {part_study}, not to {study_uid} named in the URL"
    return None


# ---------------------------------------------------------------- the work, off the event loop


def store_parts(
    services: Services,
    site: StoringSite,
    parts: Sequence[SpooledPart],
    study_uid: str | None,
    source: str | None,
) -> list[PartResult]:
    """Admit and ingest each complete part in body order. Once the store or the index is down
    the remaining parts are not tried (each would wait for the same timeouts) and answer 0xA700."""
    results: list[PartResult] = []
    down: str | None = None
    for part in parts:
        declared = read_declared(part.path)
        if down is not None:
            results.append(
                PartResult(
                    part.number,
                    False,
                    f"not attempted: {down}",
                    OUT_OF_RESOURCES,
                    sop_class_uid=declared.sop_class_uid,
                    sop_instance_uid=declared.sop_instance_uid,
                )
            )
            continue
        refusal = admission_refusal(part.path, declared, study_uid)
        if refusal is not None:
            code, reason = refusal
            results.append(
                PartResult(
                    part.number,
                    False,
                    reason,
                    code,
                    sop_class_uid=declared.sop_class_uid,
                    sop_instance_uid=declared.sop_instance_uid,
                )
            )
            continue
        origin = Origin(
            site_id=site.site_id,
            calling_ae=None,
            source_address=source,
            assumed_charset=site.assumed_charset,
            # No expected_* UIDs: unlike a C-STORE command, a file meta is written by whatever
            # tool last saved the file, and is often left stale by tools that change UIDs; the
            # data set's own UIDs are the ones that count (PS3.10 7.1 notwithstanding).
        )
        try:
            outcome = services.ingest.receive(part.path, origin)
        except Exception as exc:  # Ingest never raises by design; a bug must not lose the answer
            log.exception("stow.part_failed", part=part.number, site=site.name)
            results.append(
                PartResult(part.number, False, f"processing failure: {type(exc).__name__}", PROCESSING_FAILURE)
            )
            continue
        results.append(answer_part(part.number, outcome, declared.sop_class_uid))
        if outcome.kind is OutcomeKind.UNAVAILABLE:
            down = outcome.reason
    return results


def _stored_places(services: Services, results: Sequence[PartResult]) -> dict[str, tuple[str, str, str]]:
    """SOP Instance UID → (SOP class, series, study) of the stored instances, for their RetrieveURL."""
    uids = sorted({r.sop_instance_uid for r in results if r.stored and r.sop_instance_uid})
    places: dict[str, tuple[str, str, str]] = {}
    with transaction(services.sessions) as session:
        for start in range(0, len(uids), 500):
            rows = session.execute(
                select(Instance.sop_instance_uid, Instance.sop_class_uid, Series.series_uid, Study.study_uid)
                .join(Series, Series.id == Instance.series_pk)
                .join(Study, Study.id == Series.study_pk)
                .where(Instance.sop_instance_uid.in_(uids[start : start + 500]), Instance.is_current.is_(True))
            )
            places.update({sop: (sop_class, series, study) for sop, sop_class, series, study in rows})
    return places


def _patient_ids(services: Services, study_uids: Iterable[str]) -> dict[str, str | None]:
    with transaction(services.sessions) as session:
        rows = session.execute(select(Study.study_uid, Study.patient_id).where(Study.study_uid.in_(list(study_uids))))
        return {study: patient for study, patient in rows}


def _audit(
    services: Services, who: Principal, site: StoringSite, results: Sequence[PartResult], source: str | None
) -> None:
    """One access record per study of the request (and one for parts of no known study)."""
    by_study: dict[str | None, list[PartResult]] = defaultdict(list)
    for result in results:
        by_study[result.study_uid].append(result)
    try:
        patients = _patient_ids(services, [uid for uid in by_study if uid is not None])
    except IndexUnavailable:
        patients = {}
    for study_uid, study_results in by_study.items():
        stored = sum(r.stored for r in study_results)
        record_access(
            services.sessions,
            who,
            "store",
            outcome="success" if stored == len(study_results) else ("partial" if stored else "failure"),
            study_uid=study_uid,
            patient_id=patients.get(study_uid) if study_uid else None,
            site_id=site.site_id,
            source=source,
            stored=stored,
            failed=len(study_results) - stored,
            failure_reasons=sorted({f"0x{r.failure:04X}" for r in study_results if r.failure is not None}),
        )


# ---------------------------------------------------------------- the response (PS3.18 I.1)


def _element(vr: str, *values: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"vr": vr}
    if values:
        element["Value"] = list(values)
    return element


_UID_IN_TEXT: Final = re.compile(r"\b\d+(?:\.\d+){3,}\b")


def _comment(reason: str) -> str:
    """An Error Comment is LO, 64 characters (PS3.5 6.2): the UIDs, which the item names
    already, give way to the words."""
    return _UID_IN_TEXT.sub("…", reason)[:64]


def _reference(sop_class_uid: str | None, sop_instance_uid: str | None) -> dict[str, Any]:
    # SOP Instance Reference Macro (PS3.3 Table 10-11); empty where a part was not DICOM.
    return {
        "00081150": _element("UI", *([sop_class_uid] if sop_class_uid else [])),
        "00081155": _element("UI", *([sop_instance_uid] if sop_instance_uid else [])),
    }


def response_dataset(
    results: Sequence[PartResult], places: dict[str, tuple[str, str, str]], base_url: str, study_uid: str | None
) -> dict[str, Any]:
    """The Store Instances Response Module in DICOM JSON. Each failed item carries the reason
    in words as Error Comment (0000,0902): a Failure Reason code alone tells a clinic little."""
    referenced, failed = [], []
    studies: set[str] = set()
    for result in results:
        if result.stored:
            # The index names the series; should it be unreachable just now, the instance is
            # stored all the same and is answered without its Retrieve URL.
            sop_class, series, study = places.get(
                result.sop_instance_uid or "", (result.sop_class_uid or "", "", result.study_uid or "")
            )
            if study:
                studies.add(study)
            item = _reference(sop_class, result.sop_instance_uid)
            url = f"{base_url}/studies/{study}/series/{series}/instances/{result.sop_instance_uid}"
            item["00081190"] = _element("UR", *([url] if series else []))
            if result.warning is not None:
                item["00081196"] = _element("US", result.warning)
                item["00000902"] = _element("LO", _comment(result.reason))
            referenced.append(item)
        else:
            item = _reference(result.sop_class_uid, result.sop_instance_uid)
            item["00081197"] = _element("US", result.failure if result.failure is not None else PROCESSING_FAILURE)
            item["00000902"] = _element("LO", _comment(f"part {result.number}: {result.reason}"))
            failed.append(item)
    the_study = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    # Retrieve URL is Type 2: present, and empty when the accepted instances span several studies.
    dataset: dict[str, Any] = {"00081190": _element("UR", *([f"{base_url}/studies/{the_study}"] if the_study else []))}
    if failed:
        dataset["00081198"] = _element("SQ", *failed)
    if referenced:
        dataset["00081199"] = _element("SQ", *referenced)
    return dataset


# ---------------------------------------------------------------- routes


SiteParam = Annotated[
    str | None,
    Query(
        description="The site to store for (id or name). Required with an admin token; a site token stores for its own."
    ),
]


def _accepts_json(request: Request) -> bool:
    accept = request.headers.get("accept", "*/*")
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(types & {DICOM_JSON, "application/json", "application/*", "*/*"})


async def _stow(request: Request, who: Principal, requested_site: str | None, study_uid: str | None) -> Response:
    if not _accepts_json(request):
        raise HTTPException(406, f"STOW-RS answers {DICOM_JSON} only; send Accept: {DICOM_JSON}")
    services = services_of(request)
    settings = services.settings

    def authorize() -> StoringSite:
        with transaction(services.sessions) as session:
            return storing_site(session, who, requested_site)

    try:
        site = await run_in_threadpool(authorize)
        content_type = parse_content_type(request.headers.get("content-type"))
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    except BodyRefused as refused:
        raise HTTPException(refused.status, str(refused)) from None
    declared_length = request.headers.get("content-length", "")
    if declared_length.isdigit() and int(declared_length) > settings.stow_max_bytes:
        raise HTTPException(413, f"the request body exceeds {settings.stow_max_bytes} bytes (stow_max_bytes)")

    spooler = PartSpooler(
        content_type,
        settings.incoming_path,
        max_bytes=settings.stow_max_bytes,
        max_parts=settings.stow_max_parts,
    )
    request_id = uuid.uuid4().hex[:12]
    source = client_address(request)
    try:
        try:
            async for chunk in request.stream():
                spooler.feed(chunk)
            parts = spooler.finish()
        except BodyRefused as refused:
            log.warning(
                "stow.refused", request_id=request_id, user=who.username, status=refused.status, reason=str(refused)
            )
            raise HTTPException(refused.status, str(refused)) from None
        except OSError as exc:  # the incoming folder is full or unwritable: out of resources, not the client's fault
            log.error("stow.spool_failed", request_id=request_id, error=str(exc))
            raise HTTPException(
                503, f"cannot spool the upload: {exc.strerror or exc}", headers={"Retry-After": RETRY_AFTER_S}
            ) from None
        except ClientDisconnect:
            log.warning("stow.client_disconnected", request_id=request_id, user=who.username, received=spooler.received)
            raise HTTPException(400, "the client disconnected before the body ended; nothing was stored") from None
        results = await run_in_threadpool(store_parts, services, site, parts, study_uid, source)
    finally:
        # Stored parts were linked or uploaded into the store by Ingest: the spool is never needed again.
        spooler.discard()

    base_url = str(request.base_url).rstrip("/") + router.prefix
    try:
        places = await run_in_threadpool(_stored_places, services, results)
    except IndexUnavailable:
        places = {}
    await run_in_threadpool(_audit, services, who, site, results, source)
    status = http_status(results)
    log.info(
        "stow.answered",
        request_id=request_id,
        user=who.username,
        site=site.name,
        parts=len(results),
        stored=sum(r.stored for r in results),
        status=status,
    )
    headers = {"Retry-After": RETRY_AFTER_S} if any(r.failure == OUT_OF_RESOURCES for r in results) else {}
    return JSONResponse(
        response_dataset(results, places, base_url, study_uid),
        status_code=status,
        media_type=DICOM_JSON,
        headers=headers,
    )


@router.post("/studies", summary="STOW-RS: store instances")
async def store_instances(request: Request, who: Authenticated, site: SiteParam = None) -> Response:
    return await _stow(request, who, site, None)


@router.post("/studies/{study_uid}", summary="STOW-RS: store instances of one study")
async def store_study_instances(
    request: Request, who: Authenticated, study_uid: str, site: SiteParam = None
) -> Response:
    return await _stow(request, who, site, study_uid)
