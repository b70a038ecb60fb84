"""The report's tables as fixed-width text, paginated: what the PDF prints in a monospaced font.

A cell too wide for its column wraps onto more lines of its row (an adverse event's text is
never cut); a table split by a page break starts again with its title and header.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from treadctl.clinic.report.content import Table

Style = Literal["title", "header", "row", "empty", "blank"]
GAP = "  "
MIN_WIDTH = 5


@dataclass(frozen=True, slots=True)
class Line:
    style: Style
    text: str


def _widths(table: Table, width: int) -> list[int]:
    """Each column's natural width (a header may wrap at its spaces); the widest give way
    until the table fits `width`."""
    widths = [
        max([*(len(word) for word in header.split()), *(len(row[i]) for row in table.rows)])
        for i, header in enumerate(table.headers)
    ]
    budget = width - len(GAP) * (len(widths) - 1)
    while sum(widths) > budget:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= MIN_WIDTH:
            break
        widths[widest] -= 1
    return widths


def _wrap(cells: Sequence[str], widths: Sequence[int], numeric: frozenset[int]) -> list[str]:
    wrapped = [
        textwrap.wrap(cell, w, break_on_hyphens=False) or [""]
        for cell, w in zip(cells, widths, strict=True)
    ]
    height = max(len(lines) for lines in wrapped)
    return [
        GAP.join(
            (lines[k] if k < len(lines) else "").rjust(w)
            if i in numeric
            else (lines[k] if k < len(lines) else "").ljust(w)
            for i, (lines, w) in enumerate(zip(wrapped, widths, strict=True))
        ).rstrip()
        for k in range(height)
    ]


def _head(table: Table, widths: list[int], *, continued: bool) -> list[Line]:
    title = f"{table.title} (continued)" if continued else table.title
    header = _wrap(table.headers, widths, table.numeric)
    rule = GAP.join("-" * w for w in widths)
    return [Line("title", title), *(Line("header", h) for h in header), Line("header", rule)]


def paginate(tables: Sequence[Table], *, width: int, lines_per_page: int) -> list[list[Line]]:
    """The tables one after the other, as pages of at most `lines_per_page` lines."""
    pages: list[list[Line]] = [[]]

    def room() -> int:
        return lines_per_page - len(pages[-1])

    for table in tables:
        if pages[-1]:
            pages[-1].append(Line("blank", ""))
        if not table.rows:
            if room() < 2:
                pages.append([])
            pages[-1] += [Line("title", table.title), Line("empty", table.empty)]
            continue
        widths = _widths(table, width)
        rows = [[Line("row", text) for text in _wrap(r, widths, table.numeric)] for r in table.rows]
        head = _head(table, widths, continued=False)
        if room() < len(head) + len(rows[0]):
            pages.append([])
        pages[-1] += head
        for row in rows:
            if room() < len(row):
                pages.append(_head(table, widths, continued=True))
            pages[-1] += row
    return [page for page in pages if page]
