"""Deterministic UIDs for the report's outputs.

A delivery that is retried, or a report that is rebuilt from the index, must send the same
UIDs again: a receiving PACS then replaces the instance it has instead of filing a duplicate
(PS3.4 B.4.1: a C-STORE of an existing SOP Instance UID). So the UIDs are name-based UUIDs
(RFC 9562 version 5) of the facts that identify an output, in the ``2.25.`` form (PS3.5 B.2),
which needs no registered organisation root.

Not ``pydicom.uid.generate_uid(prefix=None, entropy_srcs=...)``: with ``prefix=None`` pydicom
3.0 returns a random UUID4 and ignores the entropy sources (measured: three builds of one
report gave three series UIDs). With a prefix it hashes, but a hash under ``2.25.`` that is
not a UUID would break that root's rule.
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

from reading.reports.document import ReportDocument

OutputKind = Literal["sr", "pdf", "image"]
OUTPUT_KINDS: Final[tuple[OutputKind, ...]] = ("sr", "pdf", "image")
# Fixed for ever: changing it changes every UID we have ever sent.
YUNYING_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:yunying:reading:report-outputs")


def _uid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(YUNYING_NAMESPACE, '|'.join(parts)).int}"


def output_uid(doc: ReportDocument, kind: OutputKind, *, version: int | None = None) -> str:
    """The SOP Instance UID of one version of one output (``version`` defaults to the document's).

    Asking for an older version gives the UID that version was sent with, which is what an
    amended SR lists in its Predecessor Documents Sequence (PS3.3 C.17.2.1).
    """
    number = doc.version if version is None else version
    return _uid(doc.study.study_uid, str(doc.report_id), str(number), kind)


def series_uid(doc: ReportDocument, kind: OutputKind) -> str:
    """The Series Instance UID of an output: the same for every version of one report, so a viewer
    shows the preliminary, the final and each amendment side by side in one series."""
    return _uid(doc.study.study_uid, str(doc.report_id), "series", kind)
