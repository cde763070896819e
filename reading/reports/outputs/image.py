"""The report rendered as pictures of its pages, for township PACS that display neither SR nor PDF.

One Multi-frame Grayscale Byte Secondary Capture instance per report version (PS3.3 A.8.3),
one frame per page, pages counted by the Page Number Vector (PS3.3 C.8.6.3/C.8.6.4). Chosen over
one single-frame SC per page because a report version then stays one instance with one
deterministic UID: a re-delivery replaces it whole, and a shorter amended report leaves no
stale page behind. Most reports are a single page, so a viewer that shows only the first
frame still shows the whole report.

Pages are A4-shaped (1024 × 1448), black text on white, MONOCHROME2, 8 bit, drawn by Pillow
with the same WenQuanYi Zen Hei as the PDF.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset
from pydicom.uid import MultiFrameGrayscaleByteSecondaryCaptureImageStorage

from reading.reports.document import ReportDocument
from reading.reports.outputs.facts import (
    STATUS_TITLES,
    addendum_text,
    communication_text,
    dicom_date,
    dicom_time,
    document_time,
    signature_items,
    study_items,
)
from reading.reports.outputs.fonts import FONT_INDEX, require_font
from reading.reports.outputs.modules import new_instance

PAGE_WIDTH: Final = 1024
PAGE_HEIGHT: Final = 1448  # A4's 1 : √2
MARGIN: Final = 64
FOOTER_HEIGHT: Final = 56
SERIES_DESCRIPTION: Final = "报告图像"
WHITE: Final = 255
BLACK: Final = 0
GREY: Final = 96
# Characters a Chinese line must not start with (GB/T 15834 punctuation kept with the text before).
NO_LINE_START: Final = frozenset("，。、；：？！）》」』】”’…%,.;:?!)")

Kind = Literal["title", "subtitle", "heading", "body", "small", "critical", "rule", "gap"]
SIZES: Final[dict[Kind, int]] = {
    "title": 40,
    "subtitle": 26,
    "heading": 28,
    "body": 25,
    "small": 22,
    "critical": 25,
    "rule": 0,
    "gap": 0,
}
LEADING: Final = 1.45


@dataclass(frozen=True)
class Line:
    kind: Kind
    text: str = ""
    centred: bool = False

    @property
    def height(self) -> int:
        if self.kind == "rule":
            return 14
        if self.kind == "gap":
            return 12
        return int(SIZES[self.kind] * LEADING)


@cache
def font_at(size: int) -> ImageFont.FreeTypeFont:
    """The report font at a pixel size (loaded once per size); ``ReportOutputError`` without it."""
    return ImageFont.truetype(str(require_font()), size, index=FONT_INDEX)


def wrap(text: str, size: int, width: int) -> list[str]:
    """Break text into lines no wider than ``width`` pixels: anywhere between Han characters,
    never before closing punctuation, and at the text's own line breaks."""
    font = font_at(size)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for char in paragraph:
            if current and font.getlength(current + char) > width and char not in NO_LINE_START:
                lines.append(current)
                current = char
            else:
                current += char
        lines.append(current)
    return lines


def _paragraph(kind: Kind, text: str, width: int) -> list[Line]:
    return [Line(kind, line) for line in wrap(text, SIZES[kind], width)]


def _pairs(pairs: list[tuple[str, str]], width: int) -> list[Line]:
    """(label, value) pairs two to a line when both fit, else one per line."""
    cells = [f"{label}：{value}" for label, value in pairs]
    half = width // 2
    font = font_at(SIZES["small"])
    lines: list[Line] = []
    index = 0
    while index < len(cells):
        first = cells[index]
        second = cells[index + 1] if index + 1 < len(cells) else None
        if second is not None and font.getlength(first) < half - 16 and font.getlength(second) < half - 16:
            lines.append(Line("small", f"{first}\t{second}"))
            index += 2
        else:
            lines += _paragraph("small", first, width)
            index += 1
    return lines


def report_lines(doc: ReportDocument, width: int = PAGE_WIDTH - 2 * MARGIN) -> list[Line]:
    """The report as lines to draw, in reading order (the same sections as the PDF)."""
    lines = [
        Line("title", f"{doc.centre_name}影像诊断报告", centred=True),
        Line("subtitle", f"{doc.template_title}　{STATUS_TITLES[doc.status]}", centred=True),
        Line("rule"),
        *_pairs(study_items(doc), width),
        Line("rule"),
    ]
    if doc.fields:
        lines += [Line("heading", f"结构化所见（{doc.template_title}）")]
        lines += _pairs([(f.label, f.value) for f in doc.fields], width)
    lines += [Line("gap"), Line("heading", "检查所见"), *_paragraph("body", doc.findings or "（无）", width)]
    lines += [Line("gap"), Line("heading", "诊断意见"), *_paragraph("body", doc.impression, width)]
    if doc.critical:
        box_width = width - 24  # inside the box's border and padding
        lines += [Line("gap"), *_paragraph("critical", "【危急值】本报告含危急值，已按危急值制度通报。", box_width)]
        for call in doc.critical_communications:
            lines += _paragraph("critical", communication_text(doc, call), box_width)
        lines.append(Line("gap"))  # room below the box's border
    if doc.referral:
        lines += [Line("gap"), Line("heading", "转诊建议"), *_paragraph("body", doc.referral, width)]
    if doc.addenda:
        lines += [Line("gap"), Line("heading", "补充报告")]
        for addendum in doc.addenda:
            lines += _paragraph("body", addendum_text(doc, addendum), width)
    lines += [Line("gap"), Line("rule"), *_pairs(signature_items(doc), width)]
    return lines


def paginate(lines: list[Line], height: int = PAGE_HEIGHT - 2 * MARGIN - FOOTER_HEIGHT) -> list[list[Line]]:
    """Lines split into pages of at most ``height`` pixels; a page never starts with a gap or rule."""
    pages: list[list[Line]] = [[]]
    used = 0
    for line in lines:
        if used + line.height > height and pages[-1]:
            pages.append([])
            used = 0
        if not pages[-1] and line.kind in ("gap", "rule"):
            continue
        pages[-1].append(line)
        used += line.height
    return pages


def _draw_page(doc: ReportDocument, page: list[Line], number: int, total: int) -> Image.Image:
    image = Image.new("L", (PAGE_WIDTH, PAGE_HEIGHT), WHITE)
    draw = ImageDraw.Draw(image)
    right = PAGE_WIDTH - MARGIN
    y = MARGIN
    critical_top: int | None = None
    for line in page:
        if line.kind == "critical" and critical_top is None:
            critical_top = y
        if line.kind != "critical" and critical_top is not None:
            draw.rectangle((MARGIN, critical_top - 6, right, y + 2), outline=BLACK, width=4)
            critical_top = None
        if line.kind == "rule":
            draw.line((MARGIN, y + 7, right, y + 7), fill=GREY, width=2)
        elif line.text:
            font = font_at(SIZES[line.kind])
            x = MARGIN + (12 if line.kind == "critical" else 0)
            if line.centred:
                x = int((PAGE_WIDTH - font.getlength(line.text)) / 2)
            first, _, second = line.text.partition("\t")
            draw.text((x, y), first, fill=BLACK, font=font)
            if second:
                draw.text((MARGIN + (right - MARGIN) // 2, y), second, fill=BLACK, font=font)
        y += line.height
    if critical_top is not None:
        draw.rectangle((MARGIN, critical_top - 6, right, y + 2), outline=BLACK, width=4)
    footer = font_at(SIZES["small"] - 4)
    footer_y = PAGE_HEIGHT - MARGIN
    draw.text((MARGIN, footer_y), f"{doc.centre_name}　报告编号 {doc.report_id}-{doc.version}", fill=GREY, font=footer)
    page_label = f"第 {number} 页 / 共 {total} 页"
    draw.text((right - footer.getlength(page_label), footer_y), page_label, fill=GREY, font=footer)
    return image


def render_pages(doc: ReportDocument) -> list[Image.Image]:
    """The report as 8-bit greyscale page images. Raises ``ReportOutputError`` without the font."""
    pages = paginate(report_lines(doc))
    return [_draw_page(doc, page, number, len(pages)) for number, page in enumerate(pages, start=1)]


def build_report_image(doc: ReportDocument) -> Dataset:
    """The report as a Multi-frame Grayscale Byte SC instance in its own "报告图像" series.

    Raises ``ReportOutputError`` when the font is missing or a time has no zone.
    """
    pages = render_pages(doc)
    ds = new_instance(
        doc,
        kind="image",
        sop_class_uid=MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        modality="OT",
        series_description=SERIES_DESCRIPTION,
    )
    when = document_time(doc)
    # SC Equipment (PS3.3 C.8.6.1): WSD = workstation; SC Image (C.8.6.2): when it was captured.
    ds.ConversionType = "WSD"
    ds.DateOfSecondaryCapture = dicom_date(when)
    ds.TimeOfSecondaryCapture = dicom_time(when)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    # SC Multi-frame Image (C.8.6.3): the whole picture is text that names the patient.
    ds.BurnedInAnnotation = "YES"
    ds.PresentationLUTShape = "IDENTITY"
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 127.5
    ds.WindowWidth = 256
    # Multi-frame (C.7.6.6) + SC Multi-frame Vector (C.8.6.4): frames are pages.
    ds.NumberOfFrames = len(pages)
    ds.FrameIncrementPointer = 0x00182001  # Page Number Vector
    ds.PageNumberVector = list(range(1, len(pages) + 1))
    # Image Pixel (C.7.6.3), fixed for Grayscale Byte SC.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = PAGE_HEIGHT, PAGE_WIDTH
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    pixels = np.stack([np.asarray(page, dtype=np.uint8) for page in pages])
    ds.PixelData = pixels.tobytes()  # rows × columns is even, so no pad byte is needed
    return ds
