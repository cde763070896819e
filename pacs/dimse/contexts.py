"""Presentation contexts the receiver accepts: every storage SOP class pynetdicom knows, with
the transfer syntaxes stored exactly as received. Deflated Explicit VR Little Endian is left
out on purpose (FIELD-NOTES: ~1 MB deflated inflated to ~900 MB in pynetdicom)."""

from __future__ import annotations

from typing import Final, cast

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext, build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

ACCEPTED_TRANSFER_SYNTAXES: Final = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
]
REFUSED_TRANSFER_SYNTAXES: Final = [DeflatedExplicitVRLittleEndian]


def receiver_contexts() -> list[PresentationContext]:
    syntaxes: list[str | UID] = list(ACCEPTED_TRANSFER_SYNTAXES)
    contexts = [build_context(Verification)]
    for storage in AllStoragePresentationContexts:
        contexts.append(build_context(cast(str, storage.abstract_syntax), syntaxes))
    return contexts
