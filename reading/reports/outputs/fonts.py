"""Where the report's CJK font lies: one TrueType for the PDF and the rendered image alike."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from reading.reports.outputs.errors import ReportOutputError

# Debian package fonts-wqy-zenhei; face 0 of the collection is WenQuanYi Zen Hei. TrueType
# outlines: ReportLab refuses Noto CJK's PostScript ones (FIELD-NOTES, "PDF fonts").
FONT_PATH: Final = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
FONT_INDEX: Final = 0


def require_font(path: Path = FONT_PATH) -> Path:
    """The font file, or ``ReportOutputError`` naming the package that provides it."""
    if not path.is_file():
        raise ReportOutputError(
            f"CJK font {path} not found; install it with `apt-get install fonts-wqy-zenhei` "
            "(a report rendered without a Chinese font shows boxes at the site)"
        )
    return path
