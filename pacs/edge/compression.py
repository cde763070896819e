"""Lossless compression in transit (``YUNYING_EDGE_TRANSIT_COMPRESSION=jpeg-ls``): at forward
time the edge makes a JPEG-LS Lossless copy (PS3.5 A.4.3, pydicom's encoder with pyjpegls) of an
instance it holds, and sends that copy only when it decodes back to the very bytes stored.

The copy keeps every byte of the stored data set but Pixel Data: the header before it and the
elements after it are spliced in unchanged, and only group 0002 names the new transfer syntax.
It is then checked the way the centre will judge it (``pacs.lossless.native_dataset``): rebuilt
to native Explicit VR Little Endian, it must equal the stored data set byte for byte — decoded
pixels identical, header identical. Anything else — another stored syntax, an image JPEG-LS does
not take, an encoder error, a failed check, no gain — answers ``Kept`` with why, and the stored
bytes are sent unchanged. Nothing stored at the edge is ever rewritten.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

import pydicom
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from pacs.lossless import PIXEL_DATA_TAG, UNDEFINED_LENGTH, NotReconstructible, native_dataset
from pacs.part10 import file_meta_end_of

TRANSIT_SYNTAX: Final = JPEGLSLossless
_MONOCHROME: Final = ("MONOCHROME1", "MONOCHROME2")
_SEQUENCE_DELIMITATION: Final = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@dataclass(frozen=True)
class Compressed:
    part10: bytes  # the JPEG-LS Lossless Part-10 file to send
    dataset_offset: int  # where its data set starts (after group 0002)
    original_size: int

    @property
    def dataset(self) -> bytes:
        return self.part10[self.dataset_offset :]


@dataclass(frozen=True)
class Kept:
    """Send the stored bytes as they are; ``reason`` says why they were not compressed."""

    reason: str


def compress_for_transit(original: bytes) -> Compressed | Kept:
    """A JPEG-LS Lossless copy of the Part-10 file ``original`` that decodes back to it exactly,
    or ``Kept`` with the reason to send ``original`` itself. Never raises for the content."""
    offset = file_meta_end_of(io.BytesIO(original))
    if offset is None:
        return Kept("not a Part-10 file")
    source = io.BytesIO(original)
    try:
        header = pydicom.dcmread(source, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 — pydicom raises many types for broken input
        return Kept(f"unreadable header: {type(exc).__name__}")
    pixel_offset = source.tell()
    syntax = str(header.file_meta.get("TransferSyntaxUID", ""))
    if syntax != ExplicitVRLittleEndian:
        # Implicit VR would need its header re-encoded (and so altered); a compressed one is done.
        return Kept(f"stored as {pydicom.uid.UID(syntax).name or syntax}, not Explicit VR Little Endian")
    element = original[pixel_offset : pixel_offset + 12]
    if len(element) < 12 or element[:4] != PIXEL_DATA_TAG:
        return Kept("no integer Pixel Data (7FE0,0010)")  # none, or Float/Double Float Pixel Data
    value_length = struct.unpack("<L", element[8:12])[0]
    if value_length == UNDEFINED_LENGTH or pixel_offset + 12 + value_length > len(original):
        return Kept("Pixel Data has no defined length within the file")
    unsuitable = _unsuitable(header)
    if unsuitable:
        return Kept(unsuitable)
    try:
        full = pydicom.dcmread(io.BytesIO(original))
        full.compress(TRANSIT_SYNTAX, encoding_plugin="pyjpegls")
    except Exception as exc:  # noqa: BLE001 — an encoder refusal (values beyond Bits Stored…) or failure
        return Kept(f"the JPEG-LS encoder failed: {type(exc).__name__}: {str(exc)[:200]}")
    meta = DicomBytesIO()
    write_file_meta_info(meta, full.file_meta, enforce_standard=True)  # group length recomputed
    pixel_element = PIXEL_DATA_TAG + b"OB\x00\x00" + struct.pack("<L", UNDEFINED_LENGTH)
    copy = b"".join(
        (
            original[:128],
            b"DICM",
            meta.getvalue(),
            original[offset:pixel_offset],
            pixel_element,
            bytes(full.PixelData),
            _SEQUENCE_DELIMITATION,
            original[pixel_offset + 12 + value_length :],
        )
    )
    dataset_offset = 132 + len(meta.getvalue())
    if len(copy) >= len(original):
        return Kept("JPEG-LS saves nothing on this image")
    try:
        rebuilt = native_dataset(io.BytesIO(copy), dataset_offset)
    except NotReconstructible as exc:
        return Kept(f"the compressed copy does not decode: {exc}")
    if rebuilt != original[offset:]:
        return Kept("the compressed copy does not decode to the stored bytes")
    return Compressed(copy, dataset_offset, len(original))


def _unsuitable(header: pydicom.Dataset) -> str | None:
    try:
        samples = int(header.get("SamplesPerPixel", 1))
        bits = int(header.BitsAllocated)
        photometric = str(header.PhotometricInterpretation)
    except (AttributeError, TypeError, ValueError):
        return "image attributes missing or invalid"
    if samples != 1 or photometric not in _MONOCHROME:
        return f"{photometric} with {samples} samples: only monochrome images are compressed"
    if bits not in (8, 16):
        return f"{bits} bits allocated: JPEG-LS takes 8 or 16"
    return None
