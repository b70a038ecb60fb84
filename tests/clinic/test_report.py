"""A person's report, HTML and PDF, read back: the tables carry the record's numbers, typed-in
text comes out escaped, nothing is loaded from elsewhere, and the name only when asked for."""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser

from clinic.records import FALL_TEXT, NAME, PERSON, PSEUDONYM, SCRIPT_NOTE, mrs_k, newcomer
from treadctl.clinic.report import render_html, render_pdf
from treadctl.clinic.views import Annotation, PersonRecord

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The tags, the attributes, the text of the elements with an id, and every table's rows."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self._open: list[str] = []  # ids of the elements we are in
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if (ident := attributes.get("id")) is not None:
            self._open.append(ident)
            self.texts[ident] = ""
            if tag == "table":
                self._table = ident
                self.tables[ident] = []
        if tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        if tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        if tag == "table":
            self._table = None
        if tag in {"table", "p", "section", "figure", "header"} and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for ident in self._open:
            self.texts[ident] += data

    def rows(self, table: str) -> list[list[str]]:
        return self.tables[table][1:]  # without the header row


def test_the_sessions_table_holds_the_dose_log() -> None:
    page = Page(render_html(mrs_k()))
    rows = page.rows("sessions")
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    estop = rows[3]
    assert estop[1].startswith("09 Nov 2026")
    assert estop[2:9] == [
        "tm-2",
        "backward-30",
        "32.0 / 12.2",  # planned against delivered minutes on the belt
        "10.2",  # backward minutes
        "360",
        "1.65",
        "estop: button",
    ]
    assert estop[9:12] == ["therapist-a", "3 → 5", "15"]
    assert estop[12] == f"fall: {FALL_TEXT}"
    assert estop[13] == SCRIPT_NOTE
    assert rows[5][9:12] == ["–", "–", "–"]  # not annotated yet


def test_the_other_tables_and_the_summary() -> None:
    page = Page(render_html(mrs_k()))
    assert [r[2:] for r in page.rows("deviations")] == [
        ["pause", "5:00", "operator"],
        ["estop", "10:12", "button"],
    ]
    assert [r[0] for r in page.rows("deviations")] == ["2", "4"]
    assert page.rows("adverse") == [["4", "Mon 09 Nov 2026", "fall", FALL_TEXT]]
    measures = page.rows("measures")
    assert [(r[1], r[2], r[3]) for r in measures] == [
        ("Timed Up and Go", "12.1", "s"),
        ("10 m walk speed", "0.9", "m/s"),
        ("Berg", "48", "points"),
        ("Timed Up and Go", "11", "s"),
        ("10 m walk speed", "1", "m/s"),
    ]
    steps = page.rows("progression")
    assert [(r[1], r[4], r[5]) for r in steps] == [
        ("increase", "approved", "therapist-a"),
        ("step back", "rejected", "dr-b"),
    ]
    assert steps[0][2] == "comfortable_backward_kmh 1.5 → 1.65"
    summary = page.texts["summary"]
    # weeks of 3/3, 2/3 and 1 so far of 3: 6 done of 9 due; 5 of 6 in the completed weeks
    assert "6 sessions done of 9 due so far" in summary
    assert "adherence 83 % over 2 completed weeks (1 short)" in summary
    assert "1 adverse event" in summary
    assert "1 session ended early" in summary
    html = render_html(mrs_k())
    assert "3/week × 4 weeks from Mon 02 Nov 2026 (week 3 of 4)" in html
    assert "comfortable_backward_kmh 1.65" in html  # the dose after the approved step


def test_typed_in_text_is_escaped() -> None:
    html = render_html(mrs_k())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;" in html
    page = Page(html)
    assert all(tag not in {"script", "b", "iframe", "link"} for tag, _ in page.tags)
    assert page.rows("adverse")[0][3] == FALL_TEXT  # and reads back as typed


def test_nothing_is_loaded_from_elsewhere() -> None:
    html = render_html(mrs_k())
    assert "http://" not in html
    assert "https://" not in html
    page = Page(html)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 4  # dose, speed, pain and exertion, outcome measures
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value)
    for attrs in images:
        src = attrs["src"]
        assert src is not None
        assert base64.b64decode(src.removeprefix("data:image/png;base64,")).startswith(PNG)
    assert "url(" not in html


def test_the_name_only_when_asked_for() -> None:
    hidden = render_html(mrs_k())
    assert NAME not in hidden
    assert "Kowalska" not in hidden
    assert "lives alone" not in hidden  # the person's notes may name them too
    assert PSEUDONYM in hidden
    shown = render_html(mrs_k(), names=True)
    assert f"{NAME} ({PSEUDONYM})" in shown
    assert "lives alone" in shown


def test_a_person_with_nothing_yet() -> None:
    page = Page(render_html(newcomer()))
    assert page.texts["summary"] == "No sessions recorded yet."
    assert "No sessions recorded yet: nothing to chart." in page.texts["charts"]
    assert not [tag for tag, _ in page.tags if tag in {"img", "table"}]
    for key in ("sessions", "deviations", "adverse", "measures", "progression"):
        assert page.texts[key].strip()  # says there is nothing rather than showing nothing


def prescribed_not_walked() -> PersonRecord:
    """A prescription in its first week and a baseline measure, no session yet."""
    base = mrs_k()
    first = replace(base.adherence[0], sessions=0, complete=False, backward_min=0.0)
    return replace(base, sessions=(), steps=(), measures=base.measures[:1], adherence=(first,))


def test_a_prescription_not_walked_yet_charts_the_plan_and_the_measure() -> None:
    page = Page(render_html(prescribed_not_walked()))
    assert page.texts["summary"] == "No sessions recorded yet."
    figures = [attrs.get("id") for tag, attrs in page.tags if tag == "figure"]
    assert figures == ["chart-dose", "chart-measures"]
    pdf = render_pdf(prescribed_not_walked())
    assert pages(pdf) == 2  # the header and both charts; the tables
    assert "Timed Up and Go (s)" in text(pdf)


# --- PDF -----------------------------------------------------------------------------------------


def pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def text(pdf: bytes) -> str:
    """The strings of the pages' text operators, joined (matplotlib splits words for kerning)."""
    out: list[str] = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            continue  # not a deflated content stream (a font program, an image)
        for array in re.findall(rb"\[(.*?)\]\s*TJ", content, re.DOTALL):
            parts = re.findall(rb"\(((?:\\.|[^\\)])*)\)", array)
            out.append(b"".join(re.sub(rb"\\(.)", rb"\1", p) for p in parts).decode("latin-1"))
    return "\n".join(out)


def test_the_pdf_pages_and_words() -> None:
    pdf = render_pdf(mrs_k())
    assert pdf.startswith(b"%PDF-")
    assert pages(pdf) == 3  # header and two charts; two charts; the tables
    words = text(pdf)
    assert PSEUDONYM in words
    assert f"/Title (Backward walking dose log: {PSEUDONYM})".encode() in pdf
    assert "estop: button" in words
    assert "Sessions" in words
    assert "Kowalska" not in words
    assert b"Kowalska" not in pdf
    assert "Kowalska" in text(render_pdf(mrs_k(), names=True))


def test_an_empty_pdf_says_so() -> None:
    pdf = render_pdf(newcomer())
    assert pages(pdf) == 2  # the header, no charts; the tables saying there is nothing
    words = text(pdf)
    assert "No sessions recorded yet: nothing to chart." in words
    assert "No adverse events recorded." in words


def long_record() -> PersonRecord:
    """Twelve weeks of sessions, one note with dollar signs (matplotlib's mathtext markers)."""
    base = mrs_k()
    sessions = [
        replace(
            s,
            id=f"{s.id}-{week}",
            started=s.started + timedelta(weeks=2 * week),
            ended=s.ended and s.ended + timedelta(weeks=2 * week),
        )
        for week in range(6)
        for s in base.sessions
    ]
    sessions[0] = replace(sessions[0], annotation=Annotation(notes="paid $5 for $x^2$ parking"))
    person = replace(PERSON, notes="")
    return replace(base, person=person, sessions=tuple(sessions))


def test_a_long_record_runs_onto_more_pages() -> None:
    pdf = render_pdf(long_record())
    assert pages(pdf) > 3
    words = text(pdf)
    assert "Sessions (continued)" in words  # the title and header again after the break
    assert "paid $5" in words  # drawn as typed (the cell may wrap), not as mathematics
    assert "$x^2$" in words
    assert "36" in words  # the last session's number
