"""Presentation contexts the receiver accepts: every storage SOP class pynetdicom knows, with
the transfer syntaxes stored exactly as received, and the Patient Root and Study Root
Query/Retrieve models (FIND, MOVE, GET). Deflated Explicit VR Little Endian is left out on
purpose (FIELD-NOTES: ~1 MB deflated inflated to ~900 MB in pynetdicom)."""

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
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

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
QUERY_RETRIEVE_MODELS: Final = [
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
]
QUERY_TRANSFER_SYNTAXES: Final = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def receiver_contexts() -> list[PresentationContext]:
    syntaxes: list[str | UID] = list(ACCEPTED_TRANSFER_SYNTAXES)
    contexts = [build_context(Verification)]
    for storage in AllStoragePresentationContexts:
        context = build_context(cast(str, storage.abstract_syntax), syntaxes)
        # PS3.4 C.4.3 / PS3.7 D.3.3.4: a C-GET SCU proposes storage with itself as SCP; accept
        # either role (a peer that proposes no role selection keeps the default: we are SCP).
        context.scu_role = True
        context.scp_role = True
        contexts.append(context)
    contexts += [build_context(model, list(QUERY_TRANSFER_SYNTAXES)) for model in QUERY_RETRIEVE_MODELS]
    return contexts
