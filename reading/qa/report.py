"""The monthly consortium quality report as PDF: the standard sections
(``reading/qa/sections.py``) and any a later issue adds, laid out with ReportLab in the printed
report's embedded CJK font (``reading.reports.outputs.pdf.register_font``; FIELD-NOTES, "PDF
fonts"), charts from ``reading/qa/charts.py`` embedded as PNG.

A report is made in two steps, so the index is read in one transaction and the slow part (charts
and layout) runs after it: ``prepare_report`` reads (every section takes what it needs while the
session is open), ``build_report_pdf`` renders.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import Session

from reading.qa.monthly import STEPS, MonthlyFigures, MonthScope, Progress, monthly_figures
from reading.reports.outputs.pdf import numbered_canvas, register_font

HEADER_GREY: Final = colors.HexColor("#ECEFF1")
RULE_GREY: Final = colors.HexColor("#9E9E9E")


@dataclass(frozen=True)
class Kit:
    """What a section lays itself out with: the font, paragraph styles and the content width
    (points), and helpers for the report's headings, text, tables and charts."""

    font: str
    styles: dict[str, ParagraphStyle]
    width: float

    def heading(self, text: str) -> Paragraph:
        return Paragraph(escape(text), self.styles["heading"])

    def text(self, text: str, style: str = "body") -> Paragraph:
        return Paragraph(escape(text), self.styles[style])

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float] | None = None,
        *,
        text_columns: int = 1,
    ) -> Table:
        """A grid with a grey header row repeated on each page; the first ``text_columns``
        columns left-aligned (names), the others right-aligned (numbers)."""

        def style(column: int, head: bool = False) -> ParagraphStyle:
            return self.styles[("cell_head" if head else "cell") + ("" if column < text_columns else "_number")]

        data = [[Paragraph(escape(h), style(i, head=True)) for i, h in enumerate(header)]]
        data += [[Paragraph(escape(value), style(i)) for i, value in enumerate(row)] for row in rows]
        table = Table(data, colWidths=list(widths) if widths else None, repeatRows=1, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), self.font),
                    ("BACKGROUND", (0, 0), (-1, 0), HEADER_GREY),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.5, RULE_GREY),
                    ("LINEBELOW", (0, -1), (-1, -1), 0.5, RULE_GREY),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 3),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ]
            )
        )
        return table

    def chart(self, png: bytes) -> Image:
        """A chart at the content width, its aspect kept."""
        pixels_wide, pixels_high = ImageReader(io.BytesIO(png)).getSize()
        return Image(io.BytesIO(png), width=self.width, height=self.width * pixels_high / pixels_wide)

    def section(self, title: str, body: Sequence[Flowable]) -> list[Flowable]:
        """The heading kept with the first thing under it."""
        if not body:
            return [self.heading(title)]
        return [KeepTogether([self.heading(title), body[0]]), *body[1:], Spacer(1, 3 * mm)]


class ReportSection(Protocol):
    """One section of the monthly report: a title and the flowables under it."""

    @property
    def title(self) -> str: ...

    def story(self, kit: Kit) -> list[Flowable]: ...


# Reads what a section needs for a month (while the session is open); None leaves it out.
SectionSource = Callable[[Session, MonthScope], ReportSection | None]


def _peer_review(session: Session, scope: MonthScope) -> ReportSection | None:
    from reading.qa.peer_section import peer_review_section  # it builds on this module's Kit

    return peer_review_section(session, scope)


# Sections after the standard ones, in order: a ``SectionSource`` reads its figures for
# ``scope.month`` of ``scope.consortium_id`` and returns an object with ``title`` and ``story(kit)``.
EXTRA_SECTIONS: Final[tuple[SectionSource, ...]] = (_peer_review,)


@dataclass(frozen=True)
class PreparedReport:
    figures: MonthlyFigures
    sections: list[ReportSection]


def prepare_report(
    session: Session,
    scope: MonthScope,
    *,
    extra_sections: Sequence[SectionSource] = EXTRA_SECTIONS,
    progress: Progress | None = None,
) -> PreparedReport:
    """Read every figure of the report (the standard sections and ``extra_sections``)."""
    from reading.qa.sections import standard_sections

    figures = monthly_figures(session, scope, progress=progress)
    extra = [section for section in (source(session, scope) for source in extra_sections) if section is not None]
    return PreparedReport(figures, [*standard_sections(figures), *extra])


def build_report_pdf(report: PreparedReport, *, progress: Progress | None = None) -> bytes:
    """The report as PDF bytes (A4, embedded CJK font, page numbers). Raises
    ``ReportOutputError`` when the font is missing."""
    if progress is not None:
        progress(STEPS[-1])
    font = register_font()
    scope = report.figures.scope
    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"{scope.consortium} quality report {scope.month}",
        author="Yunying",
        subject=f"Monthly consortium quality report, {scope.month}",
        creator="Yunying",
        lang="zh-CN",
        invariant=True,
        # Left at Helvetica, every page stream would start with a second, non-embedded font.
        initialFontName=font,
    )
    # The page frame keeps 6 pt of padding on each side (ReportLab's Frame default).
    kit = Kit(font, _styles(font), template.width - 12)
    story: list[Flowable] = []
    for section in report.sections:
        story += section.story(kit)
    template.build(
        story,
        canvasmaker=numbered_canvas(
            f"{scope.consortium}　月度质控报告 Monthly quality report {scope.month}", font, 7.5
        ),
    )
    return buffer.getvalue()


def _styles(font: str) -> dict[str, ParagraphStyle]:
    # wordWrap="CJK": Chinese site names have no spaces to break at.
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=13, wordWrap="CJK")
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5)
    head = ParagraphStyle("cell_head", parent=cell, textColor=colors.HexColor("#37474F"))
    return {
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=10, textColor=colors.HexColor("#616161")),
        "title": ParagraphStyle("title", parent=body, fontSize=16, leading=22, alignment=TA_CENTER),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=9, leading=13, alignment=TA_CENTER),
        "heading": ParagraphStyle("heading", parent=body, fontSize=12, leading=17, spaceBefore=6, spaceAfter=3),
        "cell": cell,
        "cell_number": ParagraphStyle("cell_number", parent=cell, alignment=TA_RIGHT),
        "cell_head": head,
        "cell_head_number": ParagraphStyle("cell_head_number", parent=head, alignment=TA_RIGHT),
    }
