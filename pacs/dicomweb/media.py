"""Media types of DICOMweb: reading ``Accept`` (PS3.18 8.7) and writing ``multipart/related``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Acceptable:
    """One alternative of an Accept header, seen as the media type of the *parts* wanted.

    ``multipart/related; type="application/dicom"; transfer-syntax=*`` becomes
    ``Acceptable("application/dicom", "*", multipart=True)``; a bare ``image/jpeg`` becomes
    ``Acceptable("image/jpeg", None, multipart=False)``.
    """

    part_type: str
    transfer_syntax: str | None
    multipart: bool
    q: float = 1.0
    params: dict[str, str] = field(default_factory=dict, compare=False)

    def matches(self, media_type: str) -> bool:
        """Whether this alternative admits a part of ``media_type`` (wildcards honoured)."""
        wanted = self.part_type.lower()
        if wanted in ("*/*", "*"):
            return True
        major, _, minor = wanted.partition("/")
        if minor == "*":
            return media_type.lower().startswith(major + "/")
        return wanted == media_type.lower()


class NotAcceptable(ValueError):
    """No alternative of the Accept header can be served; the message lists what can."""


def _split_params(text: str) -> tuple[str, dict[str, str]]:
    pieces = []
    current, quoted = "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    media_type = pieces[0].strip().lower()
    params = {}
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return media_type, params


def _split_alternatives(header: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]


def parse_accept(header: str | None) -> list[Acceptable]:
    """The alternatives of ``header``, best first (no header: anything)."""
    if not header or not header.strip():
        return [Acceptable("*/*", None, multipart=False)]
    found: list[Acceptable] = []
    for alternative in _split_alternatives(header):
        media_type, params = _split_params(alternative)
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q <= 0:
            continue
        syntax = params.get("transfer-syntax") or None
        if media_type == "multipart/related":
            found.append(Acceptable(params.get("type", "*/*").lower(), syntax, True, q, params))
        else:
            found.append(Acceptable(media_type, syntax, False, q, params))
    return sorted(found, key=lambda a: -a.q)


def describe(header: str | None) -> str:
    return header.strip() if header and header.strip() else "(none)"


@dataclass(frozen=True)
class Part:
    content_type: str
    chunks: Iterable[bytes]
    location: str | None = None


class Multipart:
    """Writes ``multipart/related`` (RFC 2387) part by part, never holding more than a chunk."""

    def __init__(self, part_type: str) -> None:
        self.boundary = uuid.uuid4().hex
        self.part_type = part_type

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="{self.part_type}"; boundary={self.boundary}'

    def stream(self, parts: Iterable[Part]) -> Iterator[bytes]:
        for part in parts:
            head = f"--{self.boundary}\r\nContent-Type: {part.content_type}\r\n"
            if part.location:
                head += f"Content-Location: {part.location}\r\n"
            yield (head + "\r\n").encode()
            yield from part.chunks
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode()
