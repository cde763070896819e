"""The printed report (PDF) and the same PDF wrapped as a DICOM Encapsulated PDF instance.

Laid out as a Chinese radiology report is printed at a township clinic: centre and title,
patient and study lines, the template's structured fields, 检查所见, 诊断意见, a red 危急值
box, 转诊建议, addenda, signatures, page numbers.

The CJK font is embedded TrueType: ReportLab's built-in ``STSong-Light`` is not embedded and
prints as boxes on a PC without it, and ReportLab refuses Noto CJK's PostScript outlines
(FIELD-NOTES, "PDF fonts"). The PDF is built with ReportLab's ``invariant`` switch: no random
document ID or build-time date, so a rebuilt report gives the same bytes under the same UID.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape

from pydicom import Dataset
from pydicom.uid import EncapsulatedPDFStorage
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    HRFlowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from reading.reports.document import ReportDocument
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.facts import (
    STATUS_TITLES,
    addendum_text,
    communication_text,
    signature_items,
    study_items,
)
from reading.reports.outputs.fonts import FONT_INDEX, FONT_PATH, require_font
from reading.reports.outputs.modules import new_instance

FONT_NAME: Final = "WenQuanYiZenHei"
PDF_SERIES_DESCRIPTION: Final = "诊断报告PDF"
CRITICAL_RED: Final = colors.HexColor("#C62828")
RULE_GREY: Final = colors.HexColor("#9E9E9E")
# PS3.16 CID 7060-style document title code; the same LOINC code the SR and FHIR use.
DIAGNOSTIC_IMAGING_REPORT: Final = ("18748-4", "LN", "Diagnostic imaging report")


def register_font(path: Path = FONT_PATH) -> str:
    """Register the embedded CJK TrueType once per process and return its ReportLab name.

    Raises ``ReportOutputError`` naming the Debian package when the font file is missing.
    """
    font_file = require_font(path)
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_file), subfontIndex=FONT_INDEX))
    return FONT_NAME


def _styles(font: str) -> dict[str, ParagraphStyle]:
    # wordWrap="CJK": break between any two Han characters; Latin-style wrapping only breaks at
    # spaces, and Chinese sentences have none.
    body = ParagraphStyle("body", fontName=font, bulletFontName=font, fontSize=10.5, leading=16, wordWrap="CJK")
    return {
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=9, leading=13),
        "centre": ParagraphStyle("centre", parent=body, fontSize=18, leading=24, alignment=TA_CENTER),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=11, leading=16, alignment=TA_CENTER),
        "heading": ParagraphStyle("heading", parent=body, fontSize=12, leading=18, spaceBefore=8, spaceAfter=3),
        "impression": ParagraphStyle("impression", parent=body, fontSize=11.5, leading=18),
        "critical": ParagraphStyle("critical", parent=body, textColor=CRITICAL_RED),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of report text: escaped (ReportLab parses markup) and with line breaks kept."""
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _grid(pairs: list[tuple[str, str]], style: ParagraphStyle, columns: int, width: float) -> Table:
    """(label, value) pairs, ``columns`` per row, each cell "label：value" with the label in grey."""
    cells = [
        Paragraph(f'<font color="#616161">{escape(label)}：</font>{escape(value)}', style) for label, value in pairs
    ]
    cells += [Paragraph("", style)] * (-len(cells) % columns)
    rows = [cells[start : start + columns] for start in range(0, len(cells), columns)]
    table = Table(rows, colWidths=[width / columns] * columns)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), style.fontName),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 1),
                ("RIGHTPADDING", (0, 0), (-1, -1), 4),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    return table


def _rule(colour: colors.Color = RULE_GREY, thickness: float = 0.8) -> HRFlowable:
    return HRFlowable(width="100%", thickness=thickness, color=colour, spaceBefore=2, spaceAfter=2)


def _critical_box(doc: ReportDocument, styles: dict[str, ParagraphStyle], width: float) -> Table:
    lines = [_p("危急值：本报告含危急值，已按危急值制度通报。", styles["critical"])]
    lines += [_p(communication_text(doc, call), styles["critical"]) for call in doc.critical_communications]
    if not doc.critical_communications:
        lines.append(_p("尚未记录通报，请立即电话通知送检单位。", styles["critical"]))
    box = Table([[line] for line in lines], colWidths=[width])
    box.setStyle(
        TableStyle(
            [
                # A table sets its cells' default font (Helvetica) even where paragraphs fill them.
                ("FONTNAME", (0, 0), (-1, -1), styles["critical"].fontName),
                ("BOX", (0, 0), (-1, -1), 1.5, CRITICAL_RED),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#FDECEA")),
                ("LEFTPADDING", (0, 0), (-1, -1), 6),
                ("TOPPADDING", (0, 0), (0, 0), 5),
                ("BOTTOMPADDING", (0, -1), (-1, -1), 5),
            ]
        )
    )
    return box


def _story(doc: ReportDocument, styles: dict[str, ParagraphStyle], width: float) -> list[Flowable]:
    story: list[Flowable] = [
        _p(f"{doc.centre_name}影像诊断报告", styles["centre"]),
        _p(f"{doc.template_title}　{STATUS_TITLES[doc.status]}", styles["subtitle"]),
        Spacer(1, 3 * mm),
        _rule(colors.black, 1.2),
        _grid(study_items(doc), styles["small"], 3, width),
        _rule(),
    ]
    if doc.fields:
        story.append(_p(f"结构化所见（{doc.template_title}）", styles["heading"]))
        story.append(_grid([(f.label, f.value) for f in doc.fields], styles["small"], 2, width))
    story += [_p("检查所见", styles["heading"]), _p(doc.findings or "（无）", styles["body"])]
    story += [_p("诊断意见", styles["heading"]), _p(doc.impression, styles["impression"])]
    if doc.critical:
        story += [Spacer(1, 3 * mm), _critical_box(doc, styles, width)]
    if doc.referral:
        story += [_p("转诊建议", styles["heading"]), _p(doc.referral, styles["body"])]
    if doc.addenda:
        story.append(_p("补充报告", styles["heading"]))
        story += [_p(addendum_text(doc, addendum), styles["body"]) for addendum in doc.addenda]
    signature = KeepTogether([Spacer(1, 6 * mm), _rule(), _grid(signature_items(doc), styles["small"], 3, width)])
    story.append(signature)
    return story


def numbered_canvas(footer: str, font: str, size: float) -> type[Canvas]:
    """A canvas that draws ``footer`` and "第 n 页 / 共 N 页" at the foot of every page once the
    page count is known (second pass at save). The printed report and QA's monthly report."""

    class NumberedCanvas(Canvas):  # type: ignore[misc]  # ReportLab ships no type information
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(font, size)
                self.setFillColor(colors.black)
                self.drawString(18 * mm, 10 * mm, footer)
                self.drawRightString(A4[0] - 18 * mm, 10 * mm, f"第 {self._pageNumber} 页 / 共 {total} 页")
                super().showPage()
            super().save()

    return NumberedCanvas


def build_pdf(doc: ReportDocument) -> bytes:
    """The printed report as PDF bytes (A4, embedded WenQuanYi Zen Hei, Chinese line breaking).

    Raises ``ReportOutputError`` when the font is missing or a time has no zone.
    """
    font = register_font()
    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"{doc.centre_name}影像诊断报告",
        author=doc.signer.display_name if doc.signer else doc.author.display_name,
        subject=f"{doc.template_title} {doc.study.accession_number or ''}".strip(),
        creator="Yunying",
        lang="zh-CN",
        invariant=True,
        # Each page stream starts by selecting the initial font; left at Helvetica, that is a
        # second, non-embedded font in every report.
        initialFontName=font,
    )
    # The page frame keeps 6 pt of padding on each side (ReportLab's Frame default).
    content_width = template.width - 12
    template.build(
        _story(doc, _styles(font), content_width),
        canvasmaker=numbered_canvas(
            f"{doc.centre_name}　报告编号 {doc.report_id}-{doc.version}　本报告仅供临床参考", font, 8
        ),
    )
    return buffer.getvalue()


def build_encapsulated_pdf(doc: ReportDocument, pdf: bytes) -> Dataset:
    """The PDF as an Encapsulated PDF instance (PS3.3 A.45.1), in its own DOC series.

    Raises ``ReportOutputError`` when ``pdf`` is not a PDF.
    """
    if not pdf.startswith(b"%PDF-"):
        raise ReportOutputError(f"report {doc.report_id}: the bytes to encapsulate are not a PDF (no %PDF- header)")
    ds = new_instance(
        doc, kind="pdf", sop_class_uid=EncapsulatedPDFStorage, modality="DOC", series_description=PDF_SERIES_DESCRIPTION
    )
    # SC Equipment (PS3.3 C.8.6.1): Conversion Type is Type 1; WSD = workstation.
    ds.ConversionType = "WSD"
    # Encapsulated Document (PS3.3 C.24.2): the PDF shows the patient's name, hence YES.
    ds.BurnedInAnnotation = "YES"
    ds.AcquisitionDateTime = ""
    ds.DocumentTitle = f"{doc.centre_name}影像诊断报告（{doc.template_title}）"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = DIAGNOSTIC_IMAGING_REPORT
    ds.ConceptNameCodeSequence = [code]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    # OB values must have even length (PS3.5 7.1); the length attribute keeps the true size so
    # a reader can strip the pad byte (PS3.3 C.24.2.1).
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + b"\0" if len(pdf) % 2 else pdf
    return ds
