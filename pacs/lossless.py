"""One instance in two encodings. A clinic edge may send an instance compressed in transit to
JPEG-LS Lossless (PS3.5 A.4.3, ``pacs/edge/compression.py``); the centre must know that copy for
the instance the modality sent, and a manifest must hold for either copy. Both ends compute one
digest that a lossless change of transfer syntax does not alter, the **content digest**:

    sha256 of the data set after group 0002 in its native Explicit VR Little Endian form.

* For a data set received in a native syntax this is the sha256 of its bytes as received —
  ``Instance.sha256`` itself, so nothing extra is computed or stored (``content_sha256`` is
  NULL) and every manifest sent before this digest existed keeps its meaning.
* For a data set received in JPEG-LS Lossless it is the sha256 of: the bytes before Pixel Data
  exactly as received; then Pixel Data (7FE0,0010) as a native element — VR OW when Bits
  Allocated > 8, else OB, defined length, the decoded frames as little-endian samples, padded
  with one zero byte to even length (PS3.5 7.1.1); then the elements after Pixel Data exactly as
  received.

So two copies share a content digest only when their headers are byte-identical and their
pixels decode identically: the edge keeps the header bytes as stored (it replaces only Pixel
Data and group 0002) and checks, before sending, that this reconstruction gives back the very
bytes it holds. A transcoder that re-encodes the header elsewhere is not recognised, and its copy
stays the conflicting duplicate it always was.
"""

from __future__ import annotations

import hashlib
import io
import struct
from typing import BinaryIO, Final

import pydicom
import structlog
from pydicom.uid import JPEGLSLossless

log = structlog.get_logger(__name__)

# The syntaxes whose copies are reconstructed to native; any other syntax's digest is its sha256.
DECODED_SYNTAXES: Final = frozenset({str(JPEGLSLossless)})
# Decoding holds the frames in memory; a larger object keeps its raw sha256 as content digest
# (the centre then cannot tell its compressed copy from another — only a multi-frame this big).
MAX_DECODED_BYTES: Final = 256 * 1024 * 1024
PIXEL_DATA_TAG: Final = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian
_ITEM: Final = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER: Final = b"\xfe\xff\xdd\xe0"
UNDEFINED_LENGTH: Final = 0xFFFFFFFF


class NotReconstructible(ValueError):
    """The data set cannot be given back in its native form; the message says why."""


def encapsulated_end(handle: BinaryIO, value_start: int, size: int) -> int:
    """Offset just after the Sequence Delimitation Item of encapsulated Pixel Data whose items
    start at ``value_start`` (PS3.5 A.4). Raises ``NotReconstructible`` when it has none."""
    position = value_start
    while position + 8 <= size:
        handle.seek(position)
        header = handle.read(8)
        length = struct.unpack("<L", header[4:8])[0]
        if header[:4] == _SEQUENCE_DELIMITER:
            return position + 8
        if header[:4] != _ITEM:
            raise NotReconstructible(f"encapsulated Pixel Data has an unexpected element at byte {position}")
        position += 8 + length
    raise NotReconstructible("encapsulated Pixel Data ends without its Sequence Delimitation Item")


def native_dataset(part10: BinaryIO, dataset_offset: int) -> bytes:
    """The data set after group 0002 of a JPEG-LS Lossless Part-10 file in its native Explicit
    VR Little Endian form (the module docstring says exactly how). Raises ``NotReconstructible``
    when it has no encapsulated Pixel Data, is too large, or does not decode."""
    size = part10.seek(0, io.SEEK_END)
    part10.seek(0)
    try:
        header = pydicom.dcmread(part10, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 — pydicom raises many types for broken input
        raise NotReconstructible(f"unreadable header: {type(exc).__name__}: {exc}") from None
    pixel_offset = part10.tell()
    part10.seek(pixel_offset)
    element = part10.read(12)
    if len(element) < 12 or element[:4] != PIXEL_DATA_TAG:
        raise NotReconstructible("no Pixel Data (7FE0,0010) after the header")
    if struct.unpack("<L", element[8:12])[0] != UNDEFINED_LENGTH:
        raise NotReconstructible("Pixel Data is not encapsulated")
    end = encapsulated_end(part10, pixel_offset + 12, size)
    try:
        bits = int(header.BitsAllocated)
        frames = int(header.get("NumberOfFrames", 1) or 1)
        expected = int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1)) * frames
    except (AttributeError, TypeError, ValueError) as exc:
        raise NotReconstructible(f"image attributes missing or invalid: {exc}") from None
    if expected * max(bits // 8, 1) > MAX_DECODED_BYTES:
        raise NotReconstructible(f"decoded pixel data would exceed {MAX_DECODED_BYTES} bytes")
    part10.seek(0)
    try:
        array = pydicom.dcmread(part10).pixel_array
    except Exception as exc:  # noqa: BLE001 — any decoder failure means: not reconstructible
        raise NotReconstructible(f"the pixel data did not decode: {type(exc).__name__}: {exc}") from None
    if array.size != expected:
        raise NotReconstructible(f"decoded {array.size} samples where the header says {expected}")
    pixels = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    if len(pixels) % 2:
        pixels += b"\x00"
    vr = b"OW" if bits > 8 else b"OB"
    part10.seek(dataset_offset)
    before = part10.read(pixel_offset - dataset_offset)
    part10.seek(end)
    after = part10.read()
    return b"".join((before, PIXEL_DATA_TAG, vr, b"\x00\x00", struct.pack("<L", len(pixels)), pixels, after))


def content_sha256(part10: BinaryIO, dataset_offset: int, transfer_syntax_uid: str) -> str | None:
    """The content digest when it differs from the sha256 of the data set as received: for a
    JPEG-LS Lossless data set that reconstructs; ``None`` otherwise (the digest is then
    ``Instance.sha256``)."""
    if transfer_syntax_uid not in DECODED_SYNTAXES:
        return None
    try:
        return hashlib.sha256(native_dataset(part10, dataset_offset)).hexdigest()
    except NotReconstructible as exc:
        log.info("lossless.not_reconstructible", transfer_syntax=transfer_syntax_uid, reason=str(exc))
        return None
