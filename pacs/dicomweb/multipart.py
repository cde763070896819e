"""Spooling a ``multipart/related`` request body (RFC 2387, PS3.18 8.6.1.2) to disk, part by part.

The parsing is python-multipart's streaming ``MultipartParser`` (any boundary, the body fed in
chunks, each part's bytes handed to callbacks); this module only decides where the bytes go —
one temp file per part under the store's ``incoming`` folder, so the folder store later
hard-links a part into place instead of copying it — and which bodies to refuse. No part is
ever held in memory.

A part counts only once its closing boundary has been seen: a body that breaks off, or whose
framing is wrong, raises ``BodyRefused`` and the caller discards every spooled file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

DICOM_MEDIA_TYPE = "application/dicom"
# The DIMSE receiver's start-up sweep removes stale ``rx-*`` files under the incoming folder
# (pacs.dimse.receiver.INCOMING_PREFIX): a process killed mid-upload leaves nothing for ever.
SPOOL_PREFIX = "rx-stow-"


class BodyRefused(ValueError):
    """The request body cannot be taken as a whole. ``status`` is the HTTP status that says why
    (400 malformed, 413 too large, 415 a media type other than application/dicom)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RelatedType:
    """What the request's Content-Type says: the boundary and the root ``type`` parameter."""

    boundary: bytes
    root_type: str


def parse_content_type(header: str | None) -> RelatedType:
    """The boundary and type of a ``multipart/related`` Content-Type, quoted or not.

    Raises ``BodyRefused`` (400) when it is not multipart/related or has no boundary, and
    (415) when its ``type`` is not application/dicom: PS3.18 10.5.1.2 lets an origin server
    support only the DICOM media type, and we do not accept metadata + bulk data uploads.
    """
    media, options = parse_options_header(header or "")
    if media != b"multipart/related":
        raise BodyRefused(
            400,
            f'Content-Type must be multipart/related; type="{DICOM_MEDIA_TYPE}"; boundary=..., '
            f"not {header or 'nothing'!r}",
        )
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 70:  # RFC 2046 5.1.1: 1-70 characters
        raise BodyRefused(400, "multipart/related Content-Type needs a boundary parameter of 1-70 characters")
    root_type = options.get(b"type", DICOM_MEDIA_TYPE.encode()).decode("latin-1").strip().lower()
    if root_type != DICOM_MEDIA_TYPE:
        raise BodyRefused(415, f'only type="{DICOM_MEDIA_TYPE}" parts are stored here (PS3.18 10.5), not {root_type!r}')
    return RelatedType(boundary, root_type)


@dataclass
class SpooledPart:
    """One complete part on disk; ``number`` counts from 1 in body order."""

    number: int
    path: Path
    size: int


@dataclass
class _Current:
    number: int
    headers: dict[str, str] = field(default_factory=dict)
    name: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    handle: BinaryIO | None = None
    path: Path | None = None
    size: int = 0


class PartSpooler:
    """Feed it the body chunk by chunk (``feed``), then ``finish``; ``discard`` removes every
    file it wrote. Raises ``BodyRefused`` from ``feed``/``finish``; not thread-safe (one per
    request)."""

    def __init__(self, content_type: RelatedType, folder: Path, *, max_bytes: int, max_parts: int) -> None:
        self.folder = folder
        self.root_type = content_type.root_type
        self.max_bytes = max_bytes
        self.max_parts = max_parts
        self.received = 0
        self.parts: list[SpooledPart] = []
        self._current: _Current | None = None
        self._ended = False
        self._started = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._parser = MultipartParser(
            content_type.boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise BodyRefused(
                413, f"the request body exceeds {self.max_bytes} bytes (stow_max_bytes); send fewer parts"
            )
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise BodyRefused(400, f"malformed multipart/related body after {self.received} bytes: {exc}") from None

    def finish(self) -> list[SpooledPart]:
        """The complete parts, once the body has ended; ``BodyRefused`` (400) when the closing
        boundary never came (a broken or cut-off upload) or there were no parts."""
        self._parser.finalize()
        if not self._ended:
            where = f"part {self._current.number} is incomplete" if self._current else "no closing boundary"
            raise BodyRefused(
                400, f"the multipart/related body ends before its closing boundary ({where}); nothing was stored"
            )
        if not self.parts:
            raise BodyRefused(400, "the multipart/related body has no parts")
        return self.parts

    def discard(self) -> None:
        """Remove every spooled file (complete or not); safe to call more than once."""
        current = self._current
        if current is not None and current.handle is not None:
            current.handle.close()
        paths = [part.path for part in self.parts]
        if current is not None and current.path is not None:
            paths.append(current.path)
        for path in paths:
            path.unlink(missing_ok=True)

    # -- parser callbacks -------------------------------------------------------------

    def _part_begin(self) -> None:
        self._started += 1
        if self._started > self.max_parts:
            raise BodyRefused(413, f"the request has more than {self.max_parts} parts (stow_max_parts)")
        self._current = _Current(self._started)

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        assert self._current is not None
        self._current.name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        assert self._current is not None
        self._current.value += data[start:end]

    def _header_end(self) -> None:
        current = self._current
        assert current is not None
        name = bytes(current.name).decode("latin-1").strip().lower()
        current.headers[name] = bytes(current.value).decode("latin-1").strip()
        current.name.clear()
        current.value.clear()

    def _headers_finished(self) -> None:
        current = self._current
        assert current is not None
        declared = current.headers.get("content-type")
        # RFC 2387 3.1: the root's type is the related type; a part without its own
        # Content-Type is taken as that type (some senders omit it on every part).
        media = parse_options_header(declared)[0].decode("latin-1") if declared else self.root_type
        if media != DICOM_MEDIA_TYPE:
            raise BodyRefused(
                415,
                f"part {current.number} has Content-Type {declared!r}; every part must be {DICOM_MEDIA_TYPE} "
                f"(a DICOM Part-10 file)",
            )
        encoding = current.headers.get("content-transfer-encoding", "binary").lower()
        if encoding not in {"binary", "8bit", "7bit"}:
            raise BodyRefused(400, f"part {current.number}: Content-Transfer-Encoding {encoding!r}; send binary")
        descriptor, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=self.folder)
        current.path = Path(name)
        current.handle = os.fdopen(descriptor, "wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        current = self._current
        assert current is not None and current.handle is not None
        current.handle.write(data[start:end])
        current.size += end - start

    def _part_end(self) -> None:
        current = self._current
        assert current is not None
        if current.handle is None or current.path is None:  # a part that ended in its headers
            raise BodyRefused(400, f"part {current.number} has no body")
        current.handle.close()
        self.parts.append(SpooledPart(current.number, current.path, current.size))
        self._current = None

    def _end(self) -> None:
        self._ended = True
