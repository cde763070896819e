"""A report document as what receivers take: DICOM SR, PDF and Encapsulated PDF, a rendered
Secondary Capture, FHIR R4B DiagnosticReport, HL7 v2.5 ORU^R01.

Each output is a pure function of ``ReportDocument``: no database, no clock, no randomness,
so a retried delivery sends the same UIDs and the same bytes.
"""

from __future__ import annotations

from pydicom import Dataset

from reading.reports.document import ReportDocument
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.image import build_report_image
from reading.reports.outputs.pdf import build_encapsulated_pdf
from reading.reports.outputs.sr import build_sr

__all__ = ["ReportOutputError", "dicom_outputs"]


def dicom_outputs(doc: ReportDocument, pdf: bytes, *, with_image: bool = False) -> list[Dataset]:
    """The DICOM instances to store back to a site's PACS: [SR, Encapsulated PDF] and, for a
    site whose PACS shows neither, the rendered report image.

    ``pdf`` is ``build_pdf(doc)``'s output, passed in so the PDF stored, printed and sent over
    FHIR is one and the same. Raises ``ReportOutputError`` as the builders do.
    """
    outputs = [build_sr(doc), build_encapsulated_pdf(doc, pdf)]
    if with_image:
        outputs.append(build_report_image(doc))
    return outputs
