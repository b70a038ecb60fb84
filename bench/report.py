"""Report generation time: a person's report as HTML and as PDF, for a full 12-week record.

Run: uv run python bench/report.py [--runs 10] [--json PATH]

The record is made in this process (no database): one person on a 3/week × 12 weeks
prescription, 36 annotated sessions (a few paused, one e-stopped, two adverse events), five
outcome measures taken every four weeks, a progression step proposed each week. The first call
of each is reported alone (it loads Jinja2's template and matplotlib's fonts); then rounds of
one call of each in turn (so that the machine's load falls on all alike) give the median and
p90. Baseline in the same run, as no other report generator does the same work: matplotlib
writing a bare figure of the same size (one empty axes) to PDF, and to PNG at the HTML charts'
size; the ratios say how many such bare figures one report costs.
"""

from __future__ import annotations

import io
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchkit import make_parser, pct, ratio, table, write_json
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.figure import Figure

from treadctl.clinic.report import render_html, render_pdf
from treadctl.clinic.report.charts import DPI, WIDTH_IN
from treadctl.clinic.report.pdf import PAGE_IN
from treadctl.clinic.views import (
    AdherenceWeek,
    AdverseEvent,
    Annotation,
    Deviation,
    Measure,
    Person,
    PersonRecord,
    Prescription,
    ProgressionRule,
    ProgressionStep,
    SessionDose,
)

WEEKS, PER_WEEK = 12, 3
LIMIT_KMH = 3.0
START = date(2026, 9, 7)  # a Monday
MEASURES = (
    ("Timed Up and Go", "s", 13.0, -0.3),
    ("10 m walk speed", "m/s", 0.85, 0.02),
    ("6-minute walk", "m", 320.0, 8.0),
    ("Berg", "points", 46.0, 0.5),
    ("3 m backward walk", "s", 9.5, -0.2),
)


def _session(n: int, started: datetime, speed: float, rng: random.Random) -> SessionDose:
    estop = n == 17
    backward_s = 1800.0 * (0.35 if estop else 1.0)
    deviations = [Deviation("pause", 600.0 + rng.random() * 300, "operator")] if n % 7 == 3 else []
    if estop:
        deviations.append(Deviation("estop", backward_s + 60, "button"))
    pain = rng.randint(1, 3)
    events = (AdverseEvent("near_fall", "lost balance turning, caught by the rail"),) * estop
    if n == 25:
        events = (AdverseEvent("pain", "knee pain after the session, settled by the evening"),)
    return SessionDose(
        id=f"tm-{1 + n % 2}-{n:03d}",
        device_id=f"tm-{1 + n % 2}",
        person_id="p-0042",
        program="backward-30",
        parameters={"comfortable_backward_kmh": speed},
        started=started,
        ended=started + timedelta(seconds=backward_s + 180),
        ended_how="estop" if estop else "finished",
        end_cause="button" if estop else None,
        planned_s=1920.0,
        duration_s=backward_s + 120,
        backward_s=backward_s,
        distance_m=speed / 3.6 * backward_s + 80,
        speed_backward_avg_kmh=speed * (0.97 + 0.05 * rng.random()),
        speed_max_kmh=speed + 0.2,
        heart_rate_avg_bpm=rng.randint(92, 110),
        heart_rate_peak_bpm=rng.randint(112, 128),
        prescription_id=1,
        deviations=tuple(deviations),
        annotation=Annotation(
            pain_before=pain,
            pain_after=pain + rng.choice((0, 0, 1, 2)),
            exertion_borg=rng.randint(10, 15),
            supervised_by=rng.choice(("therapist-a", "therapist-b")),
            notes="walked steadily" if n % 5 else "asked to slow down in the last minutes",
            adverse_events=events,
        ),
    )


def full_record() -> PersonRecord:
    rng = random.Random(18)
    created = datetime(2026, 9, 1, 9, tzinfo=UTC)
    rule = ProgressionRule()
    prescription = Prescription(
        1,
        "p-0042",
        "backward-30",
        {"comfortable_backward_kmh": 1.4},
        PER_WEEK,
        WEEKS,
        START,
        rule,
        created,
    )
    sessions: list[SessionDose] = []
    steps: list[ProgressionStep] = []
    weeks: list[AdherenceWeek] = []
    speed = 1.4
    for week in range(WEEKS):
        monday = datetime.combine(START + timedelta(weeks=week), datetime.min.time(), UTC)
        done = [
            _session(len(sessions) + k, monday + timedelta(days=2 * k, hours=10), speed, rng)
            for k in range(PER_WEEK)
        ]
        sessions += done
        weeks.append(AdherenceWeek(monday.date(), PER_WEEK, PER_WEEK, True, 90.0))
        new = min(LIMIT_KMH, round(speed * 1.1, 1)) if week % 3 != 2 else speed
        decided = monday + timedelta(days=7, hours=8)
        steps.append(
            ProgressionStep(
                week + 1,
                1,
                monday.date(),
                "increase" if new > speed else "hold",
                rule.parameter,
                speed,
                new,
                "all sessions done, no symptom",
                "approved",
                decided,
                "therapist-a",
                decided,
            )
        )
        speed = new
    measures = [
        Measure(
            len(MEASURES) * taken + k,
            "p-0042",
            name,
            round(first + step * 4 * taken, 2),
            unit,
            START + timedelta(weeks=4 * taken),
        )
        for taken in range(4)
        for k, (name, unit, first, step) in enumerate(MEASURES)
    ]
    person = Person(
        "p-0042", "Anna Kowalska", "", {"max_speed_backward_kmh": LIMIT_KMH}, {}, created
    )
    return PersonRecord(
        person,
        (prescription,),
        tuple(sessions),
        tuple(measures),
        tuple(steps),
        tuple(weeks),
        datetime.combine(START + timedelta(weeks=WEEKS), datetime.min.time(), UTC),
        ("tm-1", "tm-2"),
    )


def bare_pdf() -> bytes:
    fig = Figure(figsize=PAGE_IN)
    FigureCanvasPdf(fig)
    fig.add_subplot()
    out = io.BytesIO()
    fig.savefig(out, format="pdf")
    return out.getvalue()


def bare_png() -> bytes:
    fig = Figure(figsize=(WIDTH_IN, 3.0), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.add_subplot()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def timed(works: dict[str, Callable[[], str | bytes]], runs: int) -> dict[str, dict[str, Any]]:
    """Each work's first call alone, then `runs` rounds of one call of each in turn: median and
    p90 in seconds, and the output's size."""
    first: dict[str, float] = {}
    size: dict[str, int] = {}
    for name, work in works.items():
        t0 = time.perf_counter()
        size[name] = len(work())
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(runs):
        for name, work in works.items():
            t0 = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - t0)
    return {
        name: {
            "first_s": round(first[name], 4),
            "median_s": round(statistics.median(times[name]), 4),
            "p90_s": round(pct(times[name], 90), 4),
            "runs": runs,
            "bytes": size[name],
        }
        for name in works
    }


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record = full_record()
    works: dict[str, Callable[[], str | bytes]] = {
        "html": lambda: render_html(record),
        "pdf": lambda: render_pdf(record),
        "bare_pdf_page": bare_pdf,
        "bare_png_chart": bare_png,
    }
    figures = timed(works, args.runs)
    ratios = {
        "pdf_to_bare_pdf_page": ratio(
            figures["pdf"]["median_s"], figures["bare_pdf_page"]["median_s"]
        ),
        "html_to_bare_png_chart": ratio(
            figures["html"]["median_s"], figures["bare_png_chart"]["median_s"]
        ),
    }
    print(
        f"a person's report: {len(record.sessions)} sessions over {WEEKS} weeks, "
        f"{len(record.measures)} measures, {len(record.steps)} progression steps"
    )
    keys = ["first_s", "median_s", "p90_s", "runs", "bytes"]
    print(table(["", *keys], [[name, *(f[k] for k in keys)] for name, f in figures.items()]))
    print(
        f"ratio to baseline (median): PDF {ratios['pdf_to_bare_pdf_page']}x a bare A4 page, "
        f"HTML {ratios['html_to_bare_png_chart']}x a bare chart PNG"
    )
    line = {
        name: {"median_s": figures[name]["median_s"], "p90_s": figures[name]["p90_s"]}
        for name in ("html", "pdf")
    }
    print(json.dumps({"bench": "report", **line, "ratio": ratios}))
    out = write_json(args.json, "report", {"figures": figures, "ratio": ratios, "runs": args.runs})
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
