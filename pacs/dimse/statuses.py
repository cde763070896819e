"""The one table from ingest outcomes to C-STORE statuses (PS3.4 B.2.3, PS3.7 C)."""

from __future__ import annotations

from typing import Final

from pydicom.dataset import Dataset

from pacs.ingest import IngestOutcome, OutcomeKind

SUCCESS: Final = 0x0000
NOT_AUTHORISED: Final = 0x0124  # PS3.7 C.5.1: Refused: Not Authorized
OUT_OF_RESOURCES: Final = 0xA700  # PS3.4 B.2.3: refused, out of resources — the sender may retry
DATASET_DOES_NOT_MATCH: Final = 0xA900  # PS3.4 B.2.3: data set does not match SOP class
# PS3.4 B.2.3 "Error: Cannot understand" is the range 0xC000–0xCFFF; we name the cause.
CANNOT_UNDERSTAND: Final = {
    "unparsable": 0xC000,
    "not-part10": 0xC000,
    "missing-uid": 0xC001,
    "invalid-uid": 0xC002,
    "truncated": 0xC003,
    "pixel-data-short": 0xC004,
    "foreign-study": 0xC005,
    "series-conflict": 0xC006,
    "instance-moved": 0xC007,
}

OUTCOME_STATUS: Final = {
    OutcomeKind.STORED: SUCCESS,
    OutcomeKind.DUPLICATE: SUCCESS,
    OutcomeKind.NEW_VERSION: SUCCESS,  # an alert is raised; the modality must not retry forever
    OutcomeKind.CONFLICT: SUCCESS,  # quarantined with an alert; same reason
    OutcomeKind.UNAVAILABLE: OUT_OF_RESOURCES,
}


def c_store_status(outcome: IngestOutcome) -> int:
    if outcome.kind in OUTCOME_STATUS:
        return OUTCOME_STATUS[outcome.kind]
    if outcome.code == "command-mismatch":
        return DATASET_DOES_NOT_MATCH
    return CANNOT_UNDERSTAND.get(outcome.code, 0xC000)


def status_dataset(status: int, comment: str = "") -> Dataset:
    """A status with an Error Comment (0000,0902: LO, at most 64 characters)."""
    response = Dataset()
    response.Status = status
    if comment and status != SUCCESS:
        response.ErrorComment = comment.encode("ascii", "replace").decode()[:64]
    return response
