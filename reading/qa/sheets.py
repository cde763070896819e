"""XLSX for the QA exports, made from their CSV text: the workbook holds exactly the CSV's cells
(one code path — what a spreadsheet shows cannot drift from what the CSV says), with numbers
typed as numbers so a billing officer can sum a column without converting it first."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from typing import Final

from openpyxl import Workbook
from openpyxl.styles import Font

XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Plain decimal numbers only: "1e5", "nan", "0x1F" and "007" (an ID, not a quantity) stay text.
_NUMBER: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
# Excel's limit on a sheet title, and the characters it refuses in one.
_TITLE_MAX: Final = 31
_TITLE_BAD: Final = re.compile(r"[\[\]:*?/\\]")


def xlsx_from_csv(csv_text: str, *, title: str, text_columns: Collection[str] = ()) -> bytes:
    """One sheet named ``title`` with the CSV's header (bold, frozen) and rows. Cells that are
    plain decimal numbers become numbers, except in ``text_columns`` (names, IDs, UIDs), which
    stay text as written."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _TITLE_BAD.sub(" ", title)[:_TITLE_MAX] or "Sheet"
    reader = csv.reader(io.StringIO(csv_text))
    header = next(reader, [])
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    keep_text = {i for i, name in enumerate(header) if name in text_columns}
    for row in reader:
        sheet.append([value if i in keep_text else _typed(value) for i, value in enumerate(row)])
    for i, name in enumerate(header, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = max(10, min(40, len(name) + 2))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _typed(value: str) -> str | int | float | None:
    if value == "":
        return None
    if _NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    return value
