"""Frames out of stored objects: as stored, or decoded — without loading what is not needed.

A native (uncompressed) frame is one ranged read: the Pixel Data element starts right after
the header kept at ingest (``dataset_offset + len(header_raw)``), and frame *n* lies at a
fixed stride inside it. An encapsulated frame is cut out of the element's fragments; a decoded
frame goes through pydicom's pixel handlers (pylibjpeg, pyjpegls, RLE), which read only the
frame asked for. Framework-free: the WADO-RS routes and the renderer call these.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, Final

import imagecodecs
import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.filereader import read_dataset
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian

from pacs.storage import BlobStore

IMPLICIT_LE: Final = "1.2.840.10008.1.2"
EXPLICIT_LE: Final = str(ExplicitVRLittleEndian)
BIG_ENDIAN: Final = "1.2.840.10008.1.2.2"
NATIVE: Final = frozenset({IMPLICIT_LE, EXPLICIT_LE, BIG_ENDIAN})

# PS3.18 Table 8.7.3-5: the media type of a frame in each transfer syntax.
FRAME_MEDIA_TYPES: Final[dict[str, str]] = {
    IMPLICIT_LE: "application/octet-stream",
    EXPLICIT_LE: "application/octet-stream",
    BIG_ENDIAN: "application/octet-stream",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}
# High-Throughput JPEG 2000, lossless (PS3.5 A.4.11): what ``htj2k_frames`` makes. "RPCL" (its
# progression order: resolution first) lets a viewer draw a coarse image from a frame's first bytes.
HTJ2K_LOSSLESS: Final = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL: Final = "1.2.840.10008.1.2.4.202"
HTJ2K_MEDIA_TYPE: Final = "image/jphc"


class PixelError(ValueError):
    """The frame cannot be produced."""


class NoSuchFrame(PixelError):
    """The instance has no pixel data, or not that many frames."""


class DecodeFailed(PixelError):
    """A codec could not decode the stored bitstream (it can still be served as stored)."""


class NotEncodable(PixelError):
    """The frame cannot be given in the transfer syntax asked for (it can be served as stored)."""


@dataclass(frozen=True)
class StoredObject:
    """Where an instance's bytes are and how they are laid out (from the index)."""

    object_key: str
    size: int
    transfer_syntax_uid: str
    dataset_offset: int
    header_length: int | None  # bytes of the data set before Pixel Data; None in rows from before 0002
    number_of_frames: int
    rows: int | None
    columns: int | None

    @property
    def pixel_offset(self) -> int | None:
        return None if self.header_length is None else self.dataset_offset + self.header_length

    @property
    def has_pixels(self) -> bool:
        """False only when the index knows the object ends before Pixel Data."""
        return self.pixel_offset is None or self.pixel_offset < self.size

    @property
    def media_type(self) -> str:
        return FRAME_MEDIA_TYPES.get(self.transfer_syntax_uid, "application/octet-stream")


def _value(header: dict[str, Any], tag: str, default: int) -> int:
    element = header.get(tag, {})
    values = element.get("Value") or [default]
    return int(values[0])


def native_frame_size(header: dict[str, Any], rows: int, columns: int) -> int | None:
    """Bytes per frame of native pixel data, or None when frames are not byte-aligned."""
    bits = _value(header, "00280100", 16)
    samples = _value(header, "00280002", 1)
    if bits % 8:
        return None
    return rows * columns * samples * bits // 8


def check_frame(stored: StoredObject, number: int) -> None:
    if not stored.has_pixels:
        raise NoSuchFrame("this instance has no pixel data")
    if not 1 <= number <= stored.number_of_frames:
        raise NoSuchFrame(f"frame {number} does not exist: the instance has {stored.number_of_frames} frame(s)")


def stored_frames(store: BlobStore, stored: StoredObject, header: dict[str, Any], numbers: list[int]) -> list[bytes]:
    """Frames ``numbers`` (1-based) as stored: native bytes, or the compressed bitstreams. A
    native frame is one ranged read; the encapsulated element is read once for all frames."""
    for number in numbers:
        check_frame(stored, number)
    syntax = stored.transfer_syntax_uid
    pixel_offset = stored.pixel_offset
    if pixel_offset is None:
        return _frames_from_whole_object(store.get(stored.object_key), stored, numbers)
    if syntax in (IMPLICIT_LE, EXPLICIT_LE) and stored.rows and stored.columns:
        frame_size = native_frame_size(header, stored.rows, stored.columns)
        if frame_size is not None:
            element_header = 8 if syntax == IMPLICIT_LE else 12
            return [_native_frame(store, stored, pixel_offset + element_header, frame_size, n) for n in numbers]
    if syntax in NATIVE:
        return decoded_frames(store, stored, numbers)  # big endian or bit-packed: decode to LE
    element = store.get_range(stored.object_key, pixel_offset, stored.size - pixel_offset)
    if element[4:6] not in (b"OB", b"OW"):
        raise PixelError("encapsulated Pixel Data without an explicit OB/OW header")
    return [_cut_frame(element[12:], n, stored.number_of_frames) for n in numbers]


def _native_frame(store: BlobStore, stored: StoredObject, value_offset: int, frame_size: int, number: int) -> bytes:
    data = store.get_range(stored.object_key, value_offset + (number - 1) * frame_size, frame_size)
    if len(data) != frame_size:
        raise PixelError(f"frame {number} is cut short in the stored object")
    return data


def _cut_frame(encapsulated: bytes, number: int, frames: int) -> bytes:
    try:
        return get_frame(encapsulated, number - 1, number_of_frames=frames)
    except (ValueError, KeyError, struct.error) as exc:
        raise PixelError(f"cannot cut frame {number} out of the encapsulated pixel data: {exc}") from exc


def _frames_from_whole_object(data: bytes, stored: StoredObject, numbers: list[int]) -> list[bytes]:
    """For index rows that do not know where Pixel Data starts: parse the object read once."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in ds:
        raise NoSuchFrame("this instance has no pixel data")
    if UID(stored.transfer_syntax_uid).is_compressed:
        return [_cut_frame(ds.PixelData, n, stored.number_of_frames) for n in numbers]
    return _decoded(data, stored, numbers)


def _decode(data: bytes, stored: StoredObject, number: int) -> tuple[np.ndarray, Dataset]:
    header = Dataset()
    try:
        array = pixel_array(io.BytesIO(data), ds_out=header, index=number - 1)
    except Exception as exc:
        raise DecodeFailed(f"cannot decode frame {number} ({stored.transfer_syntax_uid}): {exc}") from exc
    return array, header


def _decoded(data: bytes, stored: StoredObject, numbers: list[int]) -> list[bytes]:
    """Frames of the object ``data`` as native little-endian bytes (colour as interleaved RGB)."""
    frames = []
    for number in numbers:
        array, _ = _decode(data, stored, number)
        frames.append(np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False)).tobytes())
    return frames


def decoded_array(store: BlobStore, stored: StoredObject, number: int) -> tuple[np.ndarray, Dataset]:
    """Frame ``number`` decoded to an array (colour as RGB), and the data set's header."""
    check_frame(stored, number)
    return _decode(store.get(stored.object_key), stored, number)


def decoded_frames(store: BlobStore, stored: StoredObject, numbers: list[int]) -> list[bytes]:
    """Frames ``numbers`` decoded to native little-endian bytes (colour as interleaved RGB),
    from one read of the object."""
    for number in numbers:
        check_frame(stored, number)
    return _decoded(store.get(stored.object_key), stored, numbers)


def htj2k_frames(store: BlobStore, stored: StoredObject, numbers: list[int]) -> list[bytes]:
    """Frames ``numbers`` as lossless HTJ2K codestreams in RPCL order (a rendition: the stored
    object is unchanged), from one read of the object. Decoded first when stored compressed, so
    the rendition holds the pixels a decoder of the stored bitstream gets. Single-sample
    (grayscale) images of up to 16 bits only: ``NotEncodable`` otherwise."""
    for number in numbers:
        check_frame(stored, number)
    data = store.get(stored.object_key)
    return [_htj2k(_decode(data, stored, number)[0], number) for number in numbers]


def _htj2k(array: np.ndarray, number: int) -> bytes:
    if array.ndim != 2 or array.dtype.kind not in "iu" or array.dtype.itemsize > 2:
        raise NotEncodable(
            f"frame {number} ({array.dtype}, shape {array.shape}) is not a single-sample image of up to 16 bits: "
            "only those are given as HTJ2K"
        )
    # Wavelet levels down to a coarsest image of at least 8 pixels a side (5 for a 512² CT slice).
    levels = max(1, min(5, int(np.log2(min(array.shape))) - 3))
    try:
        return bytes(imagecodecs.htj2k_encode(np.ascontiguousarray(array), reversible=True, resolutions=levels))
    except imagecodecs.Htj2kError as exc:
        raise NotEncodable(f"frame {number} could not be encoded as HTJ2K: {exc}") from exc


def as_explicit_le(data: bytes) -> bytes:
    """A whole stored object re-encoded in Explicit VR Little Endian (decompressed if need be),
    as WADO-RS answers ``application/dicom`` when no transfer syntax is asked for."""
    ds = pydicom.dcmread(io.BytesIO(data))
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    try:
        if syntax.is_compressed:
            ds.decompress()
    except Exception as exc:
        raise DecodeFailed(f"cannot decompress {syntax}: {exc}") from exc
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return out.getvalue()


def pixel_value(store: BlobStore, stored: StoredObject) -> bytes:
    """The whole native Pixel Data value as stored (``/bulkdata/7FE00010``)."""
    pixel_offset = stored.pixel_offset
    if pixel_offset is None or not stored.has_pixels:
        raise NoSuchFrame("this instance has no pixel data")
    header = store.get_range(stored.object_key, pixel_offset, 12)
    implicit = stored.transfer_syntax_uid == IMPLICIT_LE
    if implicit:
        header_length, length = 8, struct.unpack("<I", header[4:8])[0]
    else:
        fmt = ">I" if stored.transfer_syntax_uid == BIG_ENDIAN else "<I"
        header_length, length = 12, struct.unpack(fmt, header[8:12])[0]
    if length == 0xFFFFFFFF:
        raise PixelError("pixel data is encapsulated: ask for its frames")
    return store.get_range(stored.object_key, pixel_offset + header_length, length)


def element_value(header_raw: bytes, transfer_syntax_uid: str, tag: int) -> bytes | None:
    """The raw value of the first element ``tag`` in a stored header (in sequences too), as
    encoded — what a ``bulk:`` reference of pacs.part10.header_json points at."""
    ds = read_dataset(io.BytesIO(header_raw), transfer_syntax_uid == IMPLICIT_LE, transfer_syntax_uid != BIG_ENDIAN)
    return _find_raw(ds, tag)


def _find_raw(ds: Dataset, tag: int) -> bytes | None:
    if tag in ds:
        raw = ds.get_item(tag)
        value = getattr(raw, "value", None)
        return bytes(value) if isinstance(value, bytes | bytearray) else None
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                found = _find_raw(item, tag)
                if found is not None:
                    return found
    return None
