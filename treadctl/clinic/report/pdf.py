"""A person's report as a PDF (A4 landscape), with matplotlib's own PDF backend: no browser, no
system library beyond what the charts already need.

Page 1: the header, the summary and the first two charts; then the other charts, two a page;
then the tables as monospaced text (texttable.py). The same words and figures as the HTML page
(content.py). Text typed in by people is drawn with parse_math off, so a `$` stays a `$`.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import Any

from treadctl.extras import CLINIC, MissingExtraError

try:
    from matplotlib.backends.backend_pdf import FigureCanvasPdf, PdfPages
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.layout_engine import ConstrainedLayoutEngine
except ModuleNotFoundError as exc:  # the daemon's install has no matplotlib
    raise MissingExtraError(CLINIC, "a person's report", exc.name) from exc

from treadctl.clinic.report import charts
from treadctl.clinic.report.content import Report, build
from treadctl.clinic.report.texttable import Line, paginate
from treadctl.clinic.views import PersonRecord

PAGE_IN = (11.69, 8.27)  # A4 landscape
MARGIN_IN = 0.45
FOOTER_IN = 0.2
TABLE_PT, LINE_PT = 6.8, 9.0  # monospaced table text and its line pitch
TABLE_CHARS = 168  # DejaVu Sans Mono is 0.6 em wide: 6.8 pt × 0.6 × 168 ≈ the page's width
LEADING = 1.45  # line pitch of the first page's text, in font sizes
MAX_ALERTS = 3  # on the first page; the adverse events table lists them all
CHARTS_PER_PAGE = 2
STYLE: dict[str, dict[str, Any]] = {
    "title": {"size": 8.5, "weight": "bold", "family": "sans-serif"},
    "header": {"size": TABLE_PT, "weight": "bold", "family": "monospace"},
    "row": {"size": TABLE_PT, "family": "monospace"},
    "empty": {"size": TABLE_PT + 1, "style": "italic", "family": "sans-serif"},
    "blank": {"size": TABLE_PT},
}


def _lines_per_page() -> int:
    usable_pt = (PAGE_IN[1] - 2 * MARGIN_IN - FOOTER_IN) * 72
    return int(usable_pt // LINE_PT)


def _page() -> Figure:
    """A page whose charts keep within the margins (the layout's rect), close to each other."""
    left, bottom = MARGIN_IN / PAGE_IN[0], (MARGIN_IN + FOOTER_IN) / PAGE_IN[1]
    rect = (left, bottom, 1 - 2 * left, 1 - bottom - MARGIN_IN / PAGE_IN[1])
    engine = ConstrainedLayoutEngine(w_pad=0.04, h_pad=0.04, rect=rect)
    fig = Figure(figsize=PAGE_IN, layout=engine)
    FigureCanvasPdf(fig)
    return fig


def _footer(fig: Figure, report: Report, number: int, total: int) -> None:
    fig.text(
        0.5,
        0.012,
        f"{report.title} · generated {report.generated} ({report.timezone}) · "
        f"page {number} of {total}",
        ha="center",
        va="bottom",
        size=7,
        color="#6c757d",
        parse_math=False,
    )


def _header_lines(report: Report) -> list[tuple[str, float, dict[str, Any]]]:
    """(text, size in points, style) of the first page's top: title, facts, summary, alerts."""
    grey, red = {"color": "#6c757d"}, {"color": "#c1121f"}
    lines: list[tuple[str, float, dict[str, Any]]] = [
        (report.title, 15, {"weight": "bold"}),
        (f"Generated {report.generated} · times in {report.timezone}", 8, grey),
        ("", 4, {}),
    ]
    for label, text in report.facts:
        for n, part in enumerate(textwrap.wrap(text, 150) or [""]):
            label_text = f"{label}:" if n == 0 else ""
            lines.append((f"{label_text:<14}{part}", 8.5, {"family": "monospace"}))
    lines.append(("", 4, {}))
    lines += [(part, 10.5, {"weight": "bold"}) for part in textwrap.wrap(report.summary, 125)]
    shown = report.alerts[:MAX_ALERTS]
    lines += [(alert, 9, red | {"weight": "bold"}) for alert in shown]
    if more := len(report.alerts) - len(shown):
        lines.append((f"… and {more} more (the adverse events table lists them all)", 9, red))
    if report.no_sessions:
        lines.append((report.no_sessions, 10, grey | {"style": "italic"}))
    return lines


def _header(fig: Figure, lines: Sequence[tuple[str, float, dict[str, Any]]]) -> None:
    y = 1 - MARGIN_IN / PAGE_IN[1]
    point = 1 / (PAGE_IN[1] * 72)  # one point as a fraction of the page's height
    for text, size, style in lines:
        if text:
            fig.text(
                MARGIN_IN / PAGE_IN[0], y, text, va="top", size=size, parse_math=False, **style
            )
        y -= size * LEADING * point


def _draw_charts(
    boxes: Sequence[SubFigure], shown: Sequence[charts.Chart], record: PersonRecord
) -> None:
    for box, chart in zip(boxes, shown, strict=True):
        chart.draw(box, record)
        box.suptitle(chart.title, size=10, weight="bold", ha="left", x=0.0)


def _chart_boxes(fig: Figure, heights: Sequence[float]) -> list[SubFigure]:
    return list(fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False).flat)


def _first_page(report: Report, record: PersonRecord, shown: Sequence[charts.Chart]) -> Figure:
    fig = _page()
    lines = _header_lines(report)
    used_in = MARGIN_IN + sum(size for _, size, _ in lines) * LEADING / 72 + 0.1
    text = min(0.6, used_in / PAGE_IN[1])
    rest = 1 - text
    heights = [text, *(rest / len(shown) for _ in shown)] if shown else [1.0]
    boxes = _chart_boxes(fig, heights)  # the first box stays empty: the header's room
    _header(fig, lines)
    _draw_charts(boxes[1:], shown, record)
    return fig


def _chart_page(record: PersonRecord, shown: Sequence[charts.Chart]) -> Figure:
    fig = _page()
    boxes = _chart_boxes(fig, [c.height_in(record) for c in shown])
    _draw_charts(boxes, shown, record)
    return fig


def _table_page(lines: Sequence[Line]) -> Figure:
    fig = Figure(figsize=PAGE_IN)  # text only: placed by hand, no layout engine
    FigureCanvasPdf(fig)
    top = 1 - MARGIN_IN / PAGE_IN[1]
    pitch = LINE_PT / 72 / PAGE_IN[1]
    left = MARGIN_IN / PAGE_IN[0]
    for n, line in enumerate(lines):
        if line.text:
            style = STYLE[line.style]
            fig.text(left, top - n * pitch, line.text, va="top", parse_math=False, **style)
    return fig


def render_pdf(record: PersonRecord, *, names: bool = False) -> bytes:
    """The report's PDF; the person by pseudonym unless `names`."""
    report = build(record, names=names)
    shown = charts.charts_for(record)
    first, others = shown[:CHARTS_PER_PAGE], shown[CHARTS_PER_PAGE:]
    table_pages = paginate(report.tables, width=TABLE_CHARS, lines_per_page=_lines_per_page())
    chart_pages = [others[i : i + CHARTS_PER_PAGE] for i in range(0, len(others), CHARTS_PER_PAGE)]
    total = 1 + len(chart_pages) + len(table_pages)
    figures = [
        _first_page(report, record, first),
        *(_chart_page(record, page) for page in chart_pages),
        *(_table_page(page) for page in table_pages),
    ]
    out = io.BytesIO()
    metadata = {"Title": report.title, "Creator": "treadctl", "Subject": "dose log"}
    with PdfPages(out, metadata=metadata) as pdf:
        for number, fig in enumerate(figures, 1):
            _footer(fig, report, number, total)
            pdf.savefig(fig)
    return out.getvalue()
