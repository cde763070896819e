"""The monthly report's charts as PNG bytes (matplotlib).

The Agg canvas is set explicitly on every figure (``FigureCanvasAgg``) and pyplot is never
imported: no GUI backend is probed on a server, and no global figure state is shared between
the threads of the web service. Chinese site names need a CJK font — the report's own
WenQuanYi Zen Hei (``reading.reports.outputs.fonts``); with matplotlib's DejaVu Sans they
would draw as boxes and warn "Glyph … missing". The font is given through an ``rc_context``
while a chart is drawn; ``rcParams`` are process-global, so charts are drawn under a lock.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reading.reports.outputs.fonts import FONT_PATH, require_font

DPI: Final = 150
WIDTH_IN: Final = 7.0  # the report's content width (174 mm) is 6.85 in: drawn at about 1:1
PRIORITY_COLOURS: Final = {"stat": "#C62828", "urgent": "#EF6C00", "routine": "#1565C0"}
PERCENTILE_SHADES: Final = ("#90CAF9", "#42A5F5", "#1565C0")
MODALITY_COLOURS: Final = ("#1565C0", "#2E7D32", "#EF6C00", "#6A1B9A", "#00838F", "#AD1457", "#5D4037")

_lock = threading.Lock()
_font_name: str | None = None


@contextmanager
def _drawing() -> Iterator[None]:
    """The report font as matplotlib's sans-serif, in weight "medium": WenQuanYi Zen Hei has
    only that weight, and asking for "normal" or "bold" logs a findfont fallback per text."""
    global _font_name
    with _lock:
        if _font_name is None:
            path = require_font(FONT_PATH)
            font_manager.fontManager.addfont(str(path))
            _font_name = font_manager.FontProperties(fname=str(path)).get_name()
        settings: dict[Any, Any] = {
            "font.family": "sans-serif",
            "font.sans-serif": [_font_name],
            "font.weight": "medium",
            "axes.titleweight": "medium",
            "axes.labelweight": "medium",
            "figure.titleweight": "medium",
            "axes.unicode_minus": False,  # U+2212 is not in the font
            "font.size": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
        with rc_context(settings):
            yield


def _figure(height_in: float) -> tuple[Figure, Any]:
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def volume_chart(days: Sequence[str], per_modality: Mapping[str, Sequence[int]]) -> bytes:
    """Studies per local day, stacked by modality (``per_modality[m][i]``: studies of ``m`` on ``days[i]``)."""
    with _drawing():
        figure, axes = _figure(2.6)
        positions = range(len(days))
        bottom = [0] * len(days)
        for i, (modality, counts) in enumerate(sorted(per_modality.items())):
            axes.bar(
                positions, counts, bottom=bottom, label=modality, color=MODALITY_COLOURS[i % len(MODALITY_COLOURS)]
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        axes.set_xticks(list(positions), [d[-2:] for d in days])
        axes.set_xlabel("day of month (local)")
        axes.set_ylabel("studies")
        axes.yaxis.get_major_locator().set_params(integer=True)
        if per_modality:
            axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _png(figure)


def sla_chart(
    priorities: Sequence[str], percentiles: Mapping[str, Sequence[float | None]], sla_minutes: Mapping[str, int]
) -> bytes:
    """Queued → signed p50/p90/p95 minutes per priority as bars beside its SLA minutes (a
    marker line); a log scale, since stat is minutes and routine a day."""
    with _drawing():
        figure, axes = _figure(2.6)
        width = 0.25
        for j, name in enumerate(("p50", "p90", "p95")):
            values = [percentiles[p][j] or 0.0 for p in priorities]
            offsets = [i + (j - 1) * width for i in range(len(priorities))]
            axes.bar(offsets, values, width, label=name, color=PERCENTILE_SHADES[j])
        for i, priority in enumerate(priorities):
            axes.hlines(sla_minutes[priority], i - 1.6 * width, i + 1.6 * width, colors="#C62828", linewidth=2)
        axes.plot([], [], color="#C62828", linewidth=2, label="SLA")
        axes.set_xticks(range(len(priorities)), list(priorities))
        axes.set_yscale("log")
        # Plain minutes (5, 30, 1440), not 10² in mathtext, whose DejaVu fonts have no "medium".
        axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.set_ylabel("minutes, queued → signed")
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _png(figure)


def breach_chart(causes: Sequence[tuple[str, int]]) -> bytes:
    """Breaches per interval that ran longest, as horizontal bars."""
    with _drawing():
        figure, axes = _figure(0.5 + 0.3 * max(1, len(causes)))
        labels = [label for label, _ in causes]
        axes.barh(range(len(causes)), [n for _, n in causes], color="#C62828")
        axes.set_yticks(range(len(causes)), labels)
        axes.invert_yaxis()
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel("breaches")
        return _png(figure)


def compliance_chart(sites: Sequence[str], compliance: Sequence[float | None]) -> bytes:
    """SLA compliance per site (%, sites with no judged task left empty)."""
    with _drawing():
        figure, axes = _figure(0.6 + 0.28 * max(1, len(sites)))
        values = [100.0 * c if c is not None else 0.0 for c in compliance]
        bars = axes.barh(range(len(sites)), values, color="#2E7D32")
        for bar, value in zip(bars, compliance, strict=True):
            text = "—" if value is None else f"{100.0 * value:.1f}%"
            where = (bar.get_width(), bar.get_y() + bar.get_height() / 2)
            axes.annotate(text, where, xytext=(3, 0), textcoords="offset points", va="center")
        axes.set_yticks(range(len(sites)), list(sites))
        axes.invert_yaxis()
        axes.set_xlim(0, 110)
        axes.set_xlabel("SLA compliance (%)")
        return _png(figure)
