"""WADO-RS (PS3.18 10.4): instances, metadata, frames, rendered and thumbnail images, bulk data.

Every route depends on ``Authenticated`` and answers 404 for what is absent or outside the
caller's scope. Instances stream from the object store part by part (never a whole study in
memory); metadata comes from the stored JSON headers; one access record per token, study and
action (``AccessLog.record_once``), written off the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import Authenticated, client_address, services_of
from pacs.dicomweb.media import Multipart, Part, describe, parse_accept
from pacs.dicomweb.refusals import audit_if_refused
from pacs.dicomweb.retrieve import Located, NotFound, locate, locate_frames, metadata
from pacs.identity.users import Principal
from pacs.index.db import IndexUnavailable, transaction
from pacs.index.models import Instance
from pacs.pixels import (
    EXPLICIT_LE,
    HTJ2K_LOSSLESS,
    HTJ2K_LOSSLESS_RPCL,
    HTJ2K_MEDIA_TYPE,
    IMPLICIT_LE,
    NATIVE,
    DecodeFailed,
    NoSuchFrame,
    NotEncodable,
    PixelError,
    as_explicit_le,
    decoded_array,
    decoded_frames,
    element_value,
    htj2k_frames,
    pixel_value,
    stored_frames,
)
from pacs.render import (
    MEDIA_TYPES,
    THUMBNAIL_SIZE,
    RenderError,
    RenderOptions,
    parse_quality,
    parse_viewport,
    parse_window,
    render,
)
from pacs.storage import StoreUnavailable

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])
DICOM_JSON = "application/dicom+json"
OCTET = "application/octet-stream"
T = TypeVar("T")

# --------------------------------------------------------------------------- plumbing


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


def _index(request: Request, who: Principal, action: str, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one index transaction, mapping absence and outages to HTTP. A study
    outside ``who``'s scope is 404 like an absent one, and audited as a denied ``action``."""
    try:
        with transaction(services_of(request).sessions, read_only=True) as session:
            return work(session)
    except NotFound as exc:
        if exc.study_uid is not None:
            audit_if_refused(request, who, action, exc.study_uid)
        raise HTTPException(404, str(exc)) from None
    except IndexUnavailable:
        raise HTTPException(503, "index unavailable; retry shortly", headers={"Retry-After": "5"}) from None


def _audit(request: Request, who: Principal, action: str, located: Located, **detail: Any) -> None:
    services_of(request).audit.record_once(
        who,
        action,
        study_uid=located.study_uid,
        patient_id=located.patient_id,
        site_id=located.site_id,
        source=client_address(request),
        **detail,
    )


def _pixels(work: Callable[[], T]) -> T:
    """Run a store/pixel operation, mapping its failures to HTTP."""
    try:
        return work()
    except NoSuchFrame as exc:
        raise HTTPException(404, str(exc)) from None
    except (DecodeFailed, NotEncodable) as exc:
        raise HTTPException(
            406, f"{exc}; ask for the frame as stored (transfer-syntax=*) and decode it in the viewer"
        ) from None
    except PixelError as exc:
        log.error("wado.damaged_object", error=str(exc))
        raise HTTPException(500, f"the stored object is damaged: {exc}") from None
    except StoreUnavailable:
        raise HTTPException(503, "object store unavailable; retry shortly", headers={"Retry-After": "5"}) from None
    except KeyError:
        log.error("wado.object_missing")
        raise HTTPException(500, "a stored object is missing from the object store; run `yunying db check`") from None


def _not_acceptable(request: Request, offered: str) -> HTTPException:
    return HTTPException(406, f"cannot answer Accept: {describe(request.headers.get('accept'))}; available: {offered}")


# --------------------------------------------------------------------------- instances

Mode = Literal["stored", "explicit"]


def _retrieve_mode(request: Request, located: list[Located]) -> Mode:
    """As stored (``transfer-syntax=*`` or the stored syntax), or Explicit VR Little Endian —
    the default of ``application/dicom`` (PS3.18 8.7.3.5.2) — decompressing where needed."""
    stored = {item.stored.transfer_syntax_uid for item in located}
    for alternative in parse_accept(accepted(request)):
        if not alternative.matches("application/dicom"):
            continue
        syntax = alternative.transfer_syntax
        if syntax == "*":
            return "stored"
        if syntax is None or syntax == EXPLICIT_LE:
            return "explicit"
        if stored == {syntax}:
            return "stored"
    raise _not_acceptable(
        request,
        'multipart/related; type="application/dicom" with transfer-syntax=* (as stored: '
        + ", ".join(sorted(stored))
        + f") or {EXPLICIT_LE}",
    )


def _instance_parts(request: Request, located: list[Located], mode: Mode) -> Iterator[Part]:
    store = services_of(request).store
    base = _base_url(request)
    for item in located:
        syntax = item.stored.transfer_syntax_uid
        if mode == "stored" or syntax == EXPLICIT_LE:
            chunks: Any = store.open_stream(item.stored.object_key)
        else:
            chunks = [as_explicit_le(store.get(item.stored.object_key))]
            syntax = EXPLICIT_LE
        yield Part(f"application/dicom; transfer-syntax={syntax}", chunks, item.url(base))


def _retrieve(request: Request, who: Principal, study: str, series: str | None = None, sop: str | None = None) -> Any:
    located = _index(request, who, "retrieve", lambda s: locate(s, who.scope, study, series, sop))
    mode = _retrieve_mode(request, located)
    _audit(request, who, "retrieve", located[0], series_uid=series, sop_instance_uid=sop, instances=len(located))
    writer = Multipart("application/dicom")

    def body() -> Iterator[bytes]:
        try:
            yield from writer.stream(_instance_parts(request, located, mode))
        except (StoreUnavailable, KeyError, PixelError) as exc:
            # The status line has gone: cutting the stream short is the only way to say so.
            log.error("wado.retrieve_cut", study_uid=study, error=str(exc))
            raise

    return StreamingResponse(body(), media_type=writer.content_type)


@router.get("/studies/{study}", summary="WADO-RS: retrieve a study's instances")
def retrieve_study(request: Request, who: Authenticated, study: str) -> Any:
    return _retrieve(request, who, study)


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: retrieve a series' instances")
def retrieve_series(request: Request, who: Authenticated, study: str, series: str) -> Any:
    return _retrieve(request, who, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}", summary="WADO-RS: retrieve an instance")
def retrieve_instance(request: Request, who: Authenticated, study: str, series: str, sop: str) -> Any:
    return _retrieve(request, who, study, series, sop)


# --------------------------------------------------------------------------- metadata


def _metadata(request: Request, who: Principal, study: str, series: str | None = None, sop: str | None = None) -> Any:
    alternatives = parse_accept(accepted(request))
    if not any(a.matches(DICOM_JSON) or a.matches("application/json") for a in alternatives):
        raise _not_acceptable(request, DICOM_JSON)
    found = _index(request, who, "metadata", lambda s: metadata(s, who.scope, _base_url(request), study, series, sop))
    _audit(request, who, "metadata", found.located[0], series_uid=series, instances=len(found.located))
    return Response(found.body, media_type=DICOM_JSON)


@router.get("/studies/{study}/metadata", summary="WADO-RS: a study's metadata")
def study_metadata(request: Request, who: Authenticated, study: str) -> Any:
    return _metadata(request, who, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: a series' metadata")
def series_metadata(request: Request, who: Authenticated, study: str, series: str) -> Any:
    return _metadata(request, who, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", summary="WADO-RS: an instance's metadata")
def instance_metadata(request: Request, who: Authenticated, study: str, series: str, sop: str) -> Any:
    return _metadata(request, who, study, series, sop)


# --------------------------------------------------------------------------- frames


def accepted(request: Request) -> str | None:
    """What the caller accepts: the ``accept`` query parameter (PS3.18 8.3.3.1; a loader that
    cannot set the header — Cornerstone's sends one fixed Accept — names HTJ2K this way), else the
    Accept header."""
    return request.query_params.get("accept") or request.headers.get("accept")


def _frame_numbers(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise HTTPException(400, f"frames must be a comma-separated list of frame numbers from 1, not {text!r}")
    if len(parts) > 10_000:
        raise HTTPException(400, "at most 10,000 frames per request")
    return [int(p) for p in parts]


FrameMode = Literal["stored", "native", "htj2k", "htj2k-rpcl"]


def _frame_mode(request: Request, item: Located) -> FrameMode:
    """As stored (compressed bitstream or native bytes), native little endian (decoded), or a
    lossless HTJ2K rendition (``type="image/jphc"``; RPCL unless 1.2.840.10008.1.2.4.201 is
    asked for by name) — the first of the caller's alternatives that can be given."""
    stored = item.stored
    syntax = stored.transfer_syntax_uid
    for alternative in parse_accept(accepted(request)):
        wanted = alternative.transfer_syntax
        if alternative.matches(HTJ2K_MEDIA_TYPE) and not (stored.media_type == HTJ2K_MEDIA_TYPE and wanted == syntax):
            if wanted in (None, HTJ2K_LOSSLESS_RPCL):
                return "htj2k-rpcl"
            if wanted == HTJ2K_LOSSLESS:
                return "htj2k"
            continue
        if alternative.part_type in ("*/*", "*"):
            if wanted in (None, "*", syntax):
                return "stored"
            if wanted == EXPLICIT_LE:
                return "native"
        elif alternative.matches(OCTET):
            if wanted == "*":
                return "stored"
            if wanted in (None, EXPLICIT_LE) or (wanted == syntax and syntax in NATIVE):
                return "native"
        elif stored.media_type != OCTET and alternative.matches(stored.media_type):
            if wanted in (None, "*", syntax):
                return "stored"
    offered = (
        f'multipart/related; type="{OCTET}" (Explicit VR Little Endian), '
        f'type="{HTJ2K_MEDIA_TYPE}"; transfer-syntax={HTJ2K_LOSSLESS_RPCL} (lossless HTJ2K, grayscale images)'
    )
    if stored.media_type != OCTET:
        offered += f' or type="{stored.media_type}"; transfer-syntax={syntax} (as stored)'
    raise _not_acceptable(request, offered)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
    summary="WADO-RS: frames of an instance, as stored or decoded",
)
def retrieve_frames(request: Request, who: Authenticated, study: str, series: str, sop: str, frames: str) -> Any:
    numbers = _frame_numbers(frames)

    item, header = _index(request, who, "frames", lambda s: locate_frames(s, who.scope, study, series, sop))
    mode = _frame_mode(request, item)
    store = services_of(request).store
    syntax = item.stored.transfer_syntax_uid
    # Frames are read before the answer starts, so a missing frame is a 404, not a cut stream.
    if mode in ("htj2k", "htj2k-rpcl"):
        data = _pixels(lambda: htj2k_frames(store, item.stored, numbers))
        media_type, syntax = HTJ2K_MEDIA_TYPE, HTJ2K_LOSSLESS if mode == "htj2k" else HTJ2K_LOSSLESS_RPCL
    elif mode == "stored" or syntax in (IMPLICIT_LE, EXPLICIT_LE):
        data = _pixels(lambda: stored_frames(store, item.stored, header, numbers))
        media_type, syntax = (item.stored.media_type, syntax) if mode == "stored" else (OCTET, EXPLICIT_LE)
    else:
        data = _pixels(lambda: decoded_frames(store, item.stored, numbers))
        media_type, syntax = OCTET, EXPLICIT_LE
    _audit(request, who, "frames", item, series_uid=series, sop_instance_uid=sop)
    url = item.url(_base_url(request))
    locations = [f"{url}/frames/{n}" for n in numbers]
    return _multipart(media_type, syntax, data, locations)


def _multipart(
    media_type: str, syntax: str | None, chunks: list[bytes], locations: list[str] | None = None
) -> Response:
    """A multipart/related answer of ``chunks``, each part of ``media_type`` (and ``syntax``)."""
    writer = Multipart(media_type)
    part_type = f"{media_type}; transfer-syntax={syntax}" if syntax else media_type
    where: list[str | None] = list(locations) if locations else [None] * len(chunks)
    parts = [Part(part_type, [chunk], location) for chunk, location in zip(chunks, where, strict=True)]
    return Response(b"".join(writer.stream(parts)), media_type=writer.content_type)


# --------------------------------------------------------------------------- rendered, thumbnail

IGNORED_RENDER_PARAMETERS = {"annotation", "charset", "iccprofile"}


def _render_options(request: Request, *, thumbnail: bool) -> tuple[RenderOptions, list[str]]:
    fmt = None
    for alternative in parse_accept(accepted(request)):
        if alternative.part_type in ("*/*", "*", "image/*"):
            fmt = "jpeg"
        elif alternative.part_type in MEDIA_TYPES:
            fmt = MEDIA_TYPES[alternative.part_type]
        if fmt:
            break
    if fmt is None:
        raise _not_acceptable(request, "image/jpeg or image/png")
    options: dict[str, Any] = {"format": fmt}
    if thumbnail:
        options["viewport"] = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    warnings = []
    try:
        for name, value in request.query_params.multi_items():
            if name == "window" and not thumbnail:
                options["window"] = parse_window(value)
            elif name == "viewport":
                options["viewport"] = parse_viewport(value)
            elif name == "quality":
                options["quality"] = parse_quality(value)
            elif name == "accept":
                continue  # the media type, taken by accepted()
            elif name in IGNORED_RENDER_PARAMETERS:
                warnings.append(f"{name} is not supported and was ignored")
            else:
                allowed = "viewport, quality" if thumbnail else "window, viewport, quality"
                raise HTTPException(400, f"unknown parameter {name!r}; this resource takes {allowed}")
    except RenderError as exc:
        raise HTTPException(400, str(exc)) from None
    return RenderOptions(**options), warnings


def _rendered(request: Request, who: Principal, item: Located, frame: int, *, thumbnail: bool) -> Response:
    options, warnings = _render_options(request, thumbnail=thumbnail)
    store = services_of(request).store

    def draw() -> bytes:
        array, header = decoded_array(store, item.stored, frame)
        return render(array, header, options)

    image = _pixels(draw)
    _audit(request, who, "thumbnail" if thumbnail else "render", item)
    headers = {"Warning": ", ".join(f'299 yunying "{w}"' for w in warnings)} if warnings else {}
    media_type = "image/png" if options.format == "png" else "image/jpeg"
    return Response(image, media_type=media_type, headers=headers)


def _one_frame(frames: str) -> int:
    numbers = _frame_numbers(frames)
    if len(numbers) != 1:
        raise HTTPException(400, "render one frame per request")
    return numbers[0]


def _instance(request: Request, who: Principal, action: str, study: str, series: str, sop: str) -> Located:
    return _index(request, who, action, lambda s: locate(s, who.scope, study, series, sop)[0])


def _representative(request: Request, who: Principal, study: str, series: str | None = None) -> Located:
    """The middle instance (slice) of the first series with pixels, for a thumbnail."""
    located = _index(request, who, "thumbnail", lambda s: locate(s, who.scope, study, series))
    with_pixels = [item for item in located if item.stored.has_pixels and item.stored.rows]
    if not with_pixels:
        raise HTTPException(404, "nothing to draw: no instance here has pixel data")
    first_series = [item for item in with_pixels if item.series_uid == with_pixels[0].series_uid]
    return first_series[len(first_series) // 2]


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered", summary="WADO-RS: an instance rendered")
def rendered_instance(request: Request, who: Authenticated, study: str, series: str, sop: str) -> Response:
    return _rendered(request, who, _instance(request, who, "render", study, series, sop), 1, thumbnail=False)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered", summary="WADO-RS: a frame rendered"
)
def rendered_frame(request: Request, who: Authenticated, study: str, series: str, sop: str, frames: str) -> Response:
    frame = _one_frame(frames)
    return _rendered(request, who, _instance(request, who, "render", study, series, sop), frame, thumbnail=False)


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: a study's thumbnail")
def study_thumbnail(request: Request, who: Authenticated, study: str) -> Response:
    return _rendered(request, who, _representative(request, who, study), 1, thumbnail=True)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: a series' thumbnail")
def series_thumbnail(request: Request, who: Authenticated, study: str, series: str) -> Response:
    return _rendered(request, who, _representative(request, who, study, series), 1, thumbnail=True)


@router.get("/studies/{study}/series/{series}/instances/{sop}/thumbnail", summary="WADO-RS: an instance's thumbnail")
def instance_thumbnail(request: Request, who: Authenticated, study: str, series: str, sop: str) -> Response:
    return _rendered(request, who, _instance(request, who, "thumbnail", study, series, sop), 1, thumbnail=True)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/thumbnail", summary="WADO-RS: a frame's thumbnail"
)
def frame_thumbnail(request: Request, who: Authenticated, study: str, series: str, sop: str, frames: str) -> Response:
    frame = _one_frame(frames)
    return _rendered(request, who, _instance(request, who, "thumbnail", study, series, sop), frame, thumbnail=True)


# --------------------------------------------------------------------------- bulk data


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}",
    summary="WADO-RS: a bulk data element of an instance (a BulkDataURI of its metadata)",
)
def bulkdata(request: Request, who: Authenticated, study: str, series: str, sop: str, tag: str) -> Any:
    if len(tag) != 8 or any(c not in "0123456789abcdefABCDEF" for c in tag):
        raise HTTPException(400, f"a bulk data tag is 8 hex digits, not {tag!r}")
    if not any(a.matches(OCTET) for a in parse_accept(accepted(request))):
        raise _not_acceptable(request, f'multipart/related; type="{OCTET}"')

    def find(session: Session) -> tuple[Located, bytes | None]:
        item = locate(session, who.scope, study, series, sop)[0]
        if tag.upper() == "7FE00010":
            return item, None
        instance = session.get(Instance, item.pk)
        assert instance is not None
        if instance.header_raw is None:
            raise NotFound(f"no bulk data {tag} in instance {sop} (indexed before 0002: re-send it)")
        value = element_value(instance.header_raw, instance.transfer_syntax_uid, int(tag, 16))
        if value is None:
            raise NotFound(f"no bulk data element {tag.upper()} in instance {sop}")
        return item, value

    item, value = _index(request, who, "bulkdata", find)
    store = services_of(request).store
    stored = item.stored
    if value is None and stored.transfer_syntax_uid not in NATIVE:  # encapsulated Pixel Data: its frames
        every = list(range(1, stored.number_of_frames + 1))
        # The layout is only read for native frames; encapsulated ones are cut from the fragments.
        frames = _pixels(lambda: stored_frames(store, stored, {}, every))
        _audit(request, who, "bulkdata", item)
        return _multipart(stored.media_type, stored.transfer_syntax_uid, frames)
    if value is None:  # native Pixel Data: the whole value
        value = _pixels(lambda: pixel_value(store, stored))
    _audit(request, who, "bulkdata", item)
    return _multipart(OCTET, None, [value])
