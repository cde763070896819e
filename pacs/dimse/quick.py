"""Two encodings on the C-STORE path written by hand, where pynetdicom builds a pydicom
``Dataset`` for each image received:

* the File Meta Information at the head of each spooled data set (pynetdicom's
  ``create_file_meta`` + pydicom's ``write_file_meta_info``: 0.21 ms an image, in the DUL
  thread, under the GIL);
* the C-STORE response (``DIMSEServiceProvider.send_msg``: ``primitive_to_message`` and
  ``encode_msg``, 0.30 ms an image).

Measured apart on the faster kind of machine (docs/performance.md, ingest section 10). Both
encode only the plain case — ASCII UIDs, a response with no Error Comment or Offending Element,
one fragment — and hand everything else to pynetdicom's own code; tests hold the bytes of each
to pynetdicom's. Like ``server.py`` and ``reactor.py`` this relies on pynetdicom internals,
which is why pynetdicom is pinned exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from pydicom.filewriter import write_file_meta_info as pydicom_write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, evt
from pynetdicom._handlers import standard_dimse_sent_handler
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta as pynetdicom_create_file_meta
from pynetdicom.pdu_primitives import P_DATA

C_STORE_RSP_COMMAND = 0x8001
NO_DATA_SET = 0x0101
LAST_COMMAND_FRAGMENT = b"\x03"  # PS3.8 E.2: command information, last fragment
PDV_HEADER = 6  # item length (4), context ID (1), message control header (1)


def _even(value: bytes, pad: bytes) -> bytes:
    return value + pad if len(value) % 2 else value


def _ascii_uid(value: Any) -> bytes | None:
    """The UID's bytes padded as PS3.5 6.2 says (trailing NUL), or None if not plain ASCII."""
    if not isinstance(value, str) or not value or not value.isascii():
        return None
    return _even(value.encode("ascii"), b"\0")


# ------------------------------------------------------------------------------ File Meta


@dataclass(frozen=True, slots=True)
class PlainFileMeta:
    """What pynetdicom's ``create_file_meta`` is given, kept as encoded UIDs."""

    sop_class: bytes
    sop_instance: bytes
    transfer_syntax: bytes


def _explicit_short(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


_VERSION_ELEMENT = struct.pack("<HH2s2xL", 0x0002, 0x0001, b"OB", 2) + b"\x00\x01"
_IMPLEMENTATION_ELEMENTS = _explicit_short(
    0x0002, 0x0012, b"UI", _even(PYNETDICOM_IMPLEMENTATION_UID.encode("ascii"), b"\0")
) + _explicit_short(0x0002, 0x0013, b"SH", _even(PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii"), b" "))


def file_meta_bytes(meta: PlainFileMeta) -> bytes:
    """Group 0002 in Explicit VR Little Endian, as pydicom writes what ``create_file_meta`` made."""
    body = b"".join(
        (
            _VERSION_ELEMENT,
            _explicit_short(0x0002, 0x0002, b"UI", meta.sop_class),
            _explicit_short(0x0002, 0x0003, b"UI", meta.sop_instance),
            _explicit_short(0x0002, 0x0010, b"UI", meta.transfer_syntax),
            _IMPLEMENTATION_ELEMENTS,
        )
    )
    return _explicit_short(0x0002, 0x0000, b"UL", struct.pack("<L", len(body))) + body


def create_file_meta(*, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any) -> Any:
    """In place of pynetdicom's, where its ``decode_msg`` spools a C-STORE data set."""
    encoded = (_ascii_uid(sop_class_uid), _ascii_uid(sop_instance_uid), _ascii_uid(transfer_syntax))
    if None in encoded:  # pydicom's checks (and its error) for anything unusual
        return pynetdicom_create_file_meta(
            sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid, transfer_syntax=transfer_syntax
        )
    return PlainFileMeta(*encoded)  # type: ignore[arg-type]


def write_file_meta_info(fp: BinaryIO, file_meta: Any) -> None:
    if isinstance(file_meta, PlainFileMeta):
        fp.write(file_meta_bytes(file_meta))
    else:
        pydicom_write_file_meta_info(fp, file_meta)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- C-STORE response


def _implicit(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def store_response_bytes(primitive: C_STORE) -> bytes | None:
    """The command set of a plain C-STORE-RSP in Implicit VR Little Endian, element for element
    as pynetdicom encodes it; None when the response carries more (pynetdicom encodes it)."""
    if primitive.ErrorComment is not None or primitive.OffendingElement is not None:
        return None
    responded_to, status = primitive.MessageIDBeingRespondedTo, primitive.Status
    if not isinstance(responded_to, int) or not isinstance(status, int):
        return None
    parts = []
    if primitive.AffectedSOPClassUID is not None:
        sop_class = _ascii_uid(primitive.AffectedSOPClassUID)
        if sop_class is None:
            return None
        parts.append(_implicit(0x0002, sop_class))
    parts.append(_implicit(0x0100, struct.pack("<H", C_STORE_RSP_COMMAND)))
    parts.append(_implicit(0x0120, struct.pack("<H", responded_to)))
    parts.append(_implicit(0x0800, struct.pack("<H", NO_DATA_SET)))
    parts.append(_implicit(0x0900, struct.pack("<H", status)))
    if primitive.AffectedSOPInstanceUID is not None:
        sop_instance = _ascii_uid(primitive.AffectedSOPInstanceUID)
        if sop_instance is None:
            return None
        parts.append(_implicit(0x1000, sop_instance))
    body = b"".join(parts)
    return _implicit(0x0000, struct.pack("<L", len(body))) + body


class QuickStoreReplies(DIMSEServiceProvider):
    """The DIMSE provider of an accepted association (``reactor.make_reactive``): a plain
    C-STORE response goes out encoded by hand; every other message as pynetdicom sends it."""

    def send_msg(self, primitive: Any, context_id: int) -> None:
        encoded = None
        if type(primitive) is C_STORE and primitive.MessageIDBeingRespondedTo is not None:
            encoded = store_response_bytes(primitive)
        maximum = self.maximum_pdu_size
        if encoded is None or (maximum and len(encoded) > maximum - PDV_HEADER) or not self._sent_unobserved():
            super().send_msg(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, LAST_COMMAND_FRAGMENT + encoded))
        self.dul.send_pdu(pdata)

    def _sent_unobserved(self) -> bool:
        """True when nothing but pynetdicom's standard logging handler (which logs nothing for
        a C-STORE-RSP) listens for EVT_DIMSE_SENT, so not building the message loses nothing."""
        bound = cast(list[tuple[Any, Any]], self.assoc.get_handlers(evt.EVT_DIMSE_SENT))  # a notification event
        return all(handler is standard_dimse_sent_handler for handler, _ in bound)
