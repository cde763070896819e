"""Peer review for a spreadsheet: the reviews and the rates as CSV, or as one XLSX workbook.

Times are written as ISO 8601 text in UTC, as in the CSV: openpyxl refuses timezone-aware
datetimes ("Excel does not support timezones"), and a naive one would lose which zone it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Final

from openpyxl import Workbook
from openpyxl.styles import Font

from reading.qa.radpeer import SCORES, RateGroup

REVIEW_COLUMNS: Final = (
    "id",
    "period",
    "state",
    "site",
    "reader",
    "reviewer",
    "modality",
    "body_part",
    "study_uid",
    "report_signed_at",
    "unassigned_reason",
    "score",
    "comment",
    "scored_at",
    "qa_state",
    "qa_outcome",
    "qa_comment",
    "qa_closed_by",
    "qa_closed_at",
)

Table = tuple[list[str], list[list[Any]]]


def reviews_table(views: Sequence[dict[str, Any]]) -> Table:
    """``views``: reviews as ``reading.qa.peer.qa_view`` gives them."""
    return list(REVIEW_COLUMNS), [[view[c] for c in REVIEW_COLUMNS] for view in views]


def rates_table(groups: Sequence[RateGroup], group_by: Sequence[str]) -> Table:
    """One line per group: its key, the reviews, the count of each score, then each rate with
    its 95 % Wilson interval."""
    header = [*group_by, "reviews", *(f"score_{s}" for s in SCORES)]
    for name in ("discrepancy", "significant"):
        header += [f"{name}_k", f"{name}_rate", f"{name}_ci95_low", f"{name}_ci95_high"]
    rows = []
    for group in groups:
        data = group.as_json()
        row: list[Any] = [*(group.key[g] for g in group_by), group.n, *(group.scores[s] for s in SCORES)]
        for name in ("discrepancy", "significant"):
            rate = data[name]
            row += [rate["k"], rate["rate"], rate["ci95_low"], rate["ci95_high"]]
        rows.append(row)
    return header, rows


def as_csv(table: Table) -> str:
    header, rows = table
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    return out.getvalue()


def as_xlsx(sheets: dict[str, Table]) -> bytes:
    """One worksheet per table (names up to 31 characters, Excel's limit), header row bold
    and frozen."""
    book = Workbook()
    book.remove(book.active)
    for title, (header, rows) in sheets.items():
        sheet = book.create_sheet(title[:31])
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
