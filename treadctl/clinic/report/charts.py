"""The report's charts: dose per week against the plan, speed progression, pain and exertion,
outcome measures.

Each chart draws into a figure or a subfigure it is given, so the HTML page renders it alone as
a PNG and the PDF places it on a page. matplotlib's object API, no pyplot, no global state.
Colours are told apart by shape or hatching as well, for greyscale prints.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from treadctl.extras import CLINIC, MissingExtraError

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, DateFormatter
    from matplotlib.figure import Figure, FigureBase
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
except ModuleNotFoundError as exc:  # the daemon's install has no matplotlib
    raise MissingExtraError(CLINIC, "a person's report", exc.name) from exc

from treadctl.clinic.report.content import current_value, measure_names, planned_min, weeks
from treadctl.clinic.views import PersonRecord, SessionDose

MET, SHORT, RUNNING, NO_PLAN = "#2a9d8f", "#e76f51", "#ced4da", "#457b9d"
SPEED, PRESCRIBED, EARLY, ADVERSE = "#1d3557", "#6c757d", "#c1121f", "#c1121f"
PAIN_BEFORE, PAIN_AFTER, BORG, MEASURE = "#6c757d", "#e76f51", "#8d99ae", "#264653"
WIDTH_IN, DPI = 10.0, 100


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    draw: Callable[[FigureBase, PersonRecord], None]
    height_in: Callable[[PersonRecord], float]
    shown: Callable[[PersonRecord], bool]


def days(when: datetime | date) -> float:
    """matplotlib's date number (days since its default epoch, 1970-01-01 UTC), local time."""
    if not isinstance(when, datetime):
        when = datetime.combine(when, datetime.min.time()).astimezone()
    return when.timestamp() / 86400


MIN_SPAN_DAYS = 7.0


def _date_axis(ax: Axes, maxticks: int = 8) -> None:
    tz = datetime.now().astimezone().tzinfo
    locator = AutoDateLocator(minticks=2, maxticks=maxticks, tz=tz)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(DateFormatter("%d %b", tz=tz))  # type: ignore[no-untyped-call]
    low, high = ax.dataLim.intervalx
    # One day's data: a week around it (matplotlib's dates would span four years, or hours
    # labelled by date).
    if high - low < MIN_SPAN_DAYS:
        middle = (low + high) / 2
        ax.set_xlim(middle - MIN_SPAN_DAYS / 2, middle + MIN_SPAN_DAYS / 2)


def _bar_colour(target: int, sessions: int, complete: bool) -> str:
    if not target:
        return NO_PLAN
    if sessions >= target:
        return MET
    return SHORT if complete else RUNNING


def draw_dose(container: FigureBase, record: PersonRecord) -> None:
    """Sessions and backward minutes a week, bars, against the plan's target, a black bar."""
    ws = weeks(record)
    count_ax, minutes_ax = container.subplots(1, 2)
    x = list(range(len(ws)))
    colours = [_bar_colour(w.target, w.sessions, w.complete) for w in ws]
    hatches = ["" if c in (MET, NO_PLAN) else "//" if c == SHORT else ".." for c in colours]
    per_session = planned_min(record)
    for ax, values, targets in (
        (count_ax, [w.sessions for w in ws], [w.target for w in ws]),
        (
            minutes_ax,
            [w.backward_min for w in ws],
            [w.target * per_session if per_session else 0 for w in ws],
        ),
    ):
        ax.bar(x, values, color=colours, hatch=hatches, edgecolor="#495057", linewidth=0.5)
        planned = [(i, t) for i, t in zip(x, targets, strict=True) if t]
        if planned:
            ax.hlines(
                [t for _, t in planned],
                [i - 0.42 for i, _ in planned],
                [i + 0.42 for i, _ in planned],
                colors="black",
                linewidth=2.2,
            )
        ax.set_xticks(x, [f"{w.start:%d %b}" for w in ws], fontsize=8)
        if len(ws) > 8:
            ax.tick_params(axis="x", labelrotation=60)
        ax.grid(visible=True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    count_ax.set_ylabel("sessions")
    count_ax.yaxis.get_major_locator().set_params(integer=True)
    minutes_ax.set_ylabel("backward minutes")
    count_ax.set_xlabel("week starting")
    minutes_ax.set_xlabel("week starting")
    container.legend(
        handles=[
            Patch(facecolor=MET, edgecolor="#495057", label="target met"),
            Patch(facecolor=SHORT, hatch="//", edgecolor="#495057", label="short"),
            Patch(facecolor=RUNNING, hatch="..", edgecolor="#495057", label="week in progress"),
            Patch(facecolor=NO_PLAN, edgecolor="#495057", label="no plan"),
            Line2D([], [], color="black", linewidth=2.2, label="target (plan)"),
        ],
        loc="outside upper center",
        ncols=5,
        fontsize=8,
        frameon=False,
    )


def _backward(sessions: Sequence[SessionDose]) -> list[tuple[float, float, bool]]:
    """(date number, mean backward speed, ended early) of each session walked backward."""
    return [
        (days(s.started), s.speed_backward_avg_kmh, s.ended_early)
        for s in sessions
        if s.speed_backward_avg_kmh is not None
    ]


def _midnight(when: date) -> datetime:
    return datetime.combine(when, datetime.min.time()).astimezone()


def _prescribed(ax: Axes, record: PersonRecord, end: float) -> None:
    """The prescribed speed, stepped where a therapist approved a step (dotted lines)."""
    chosen = record.prescription
    rule = chosen.progression if chosen else None
    if chosen is None or rule is None or not rule.parameter.endswith("_kmh"):
        return
    start_value = chosen.parameters.get(rule.parameter)
    if start_value is None:
        return
    times, values = [days(chosen.start_date)], [float(start_value)]
    for step in record.steps:
        if step.status != "approved" or step.prescription_id != chosen.id:
            continue
        if step.new_value == step.old_value:  # a hold changes nothing to mark
            continue
        effective = days(step.decided or _midnight(step.week_start + timedelta(days=7)))
        times.append(effective)
        values.append(step.new_value)
        ax.axvline(effective, color=PRESCRIBED, linestyle=":", linewidth=1)
        ax.annotate(
            f"{step.old_value:g} → {step.new_value:g}",
            (effective, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color=PRESCRIBED,
        )
    ax.plot(
        [*times, max(end, times[-1])],
        [*values, values[-1]],
        drawstyle="steps-post",
        color=PRESCRIBED,
        linestyle="--",
        linewidth=1.2,
        label=f"prescribed {rule.parameter} (approved steps dotted)",
    )


def draw_speed(container: FigureBase, record: PersonRecord) -> None:
    """Mean backward speed of each session against the prescribed speed."""
    ax = container.subplots()
    walked = _backward(record.sessions)
    ax.plot(
        [x for x, _, _ in walked],
        [v for _, v, _ in walked],
        color=SPEED,
        marker="o",
        markersize=4,
        linewidth=1.4,
        label="mean backward speed",
    )
    if early := [(x, v) for x, v, e in walked if e]:
        ax.scatter(
            [x for x, _ in early],
            [v for _, v in early],
            marker="X",
            s=60,
            color=EARLY,
            zorder=3,
            label="ended early",
        )
    _prescribed(ax, record, max([days(record.generated), *(x for x, _, _ in walked)]))
    now = current_value(record)
    top = max([0.5, *(v for _, v, _ in walked), now[1] if now else 0])
    ax.set_ylim(0, top * 1.2)
    ax.set_ylabel("km/h")
    ax.grid(visible=True, alpha=0.3)
    _date_axis(ax)
    ax.legend(loc="lower right", fontsize=8, frameon=False)


def _annotated(record: PersonRecord) -> list[tuple[int, SessionDose]]:
    return [(n, s) for n, s in enumerate(record.sessions, 1) if s.annotation is not None]


def draw_symptoms(container: FigureBase, record: PersonRecord) -> None:
    """Pain before (open) and after (filled) each session, exertion below, by session number."""
    pain_ax, borg_ax = container.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    chosen = record.prescription
    rise_max = chosen.progression.pain_rise_max if chosen and chosen.progression else 2
    for n, session in _annotated(record):
        note = session.annotation
        assert note is not None  # _annotated keeps only these
        before, after = note.pain_before, note.pain_after
        if before is not None and after is not None:
            pain_ax.plot([n, n], [before, after], color="#adb5bd", linewidth=1.5, zorder=1)
        if before is not None:
            pain_ax.scatter([n], [before], facecolors="white", edgecolors=PAIN_BEFORE, zorder=2)
        if after is not None:
            risen = note.pain_rise is not None and note.pain_rise >= rise_max
            pain_ax.scatter([n], [after], color=EARLY if risen else PAIN_AFTER, zorder=3)
        if note.adverse_events:
            pain_ax.scatter([n], [10.6], marker="v", s=70, color=ADVERSE, zorder=3)
        if note.exertion_borg is not None:
            borg_ax.bar([n], [note.exertion_borg - 6], bottom=6, color=BORG, width=0.6)
    pain_ax.set_ylim(-0.5, 11.2)
    pain_ax.set_ylabel("pain (0–10)")
    pain_ax.grid(visible=True, axis="y", alpha=0.3)
    pain_ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="", mfc="white", mec=PAIN_BEFORE, label="before"),
            Line2D([], [], marker="o", ls="", color=PAIN_AFTER, label="after"),
            Line2D([], [], marker="o", ls="", color=EARLY, label=f"after, risen by ≥ {rise_max}"),
            Line2D([], [], marker="v", ls="", color=ADVERSE, label="adverse event"),
        ],
        loc="lower center",  # a row above the axes, never over the data
        bbox_to_anchor=(0.5, 1.0),
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    borg_ax.set_ylim(6, 20)
    borg_ax.set_yticks([6, 13, 20])
    borg_ax.set_ylabel("Borg (6–20)")
    borg_ax.grid(visible=True, axis="y", alpha=0.3)
    borg_ax.set_xlabel("session # (as in the sessions table)")
    borg_ax.set_xlim(0.4, max(1, len(record.sessions)) + 0.6)
    borg_ax.xaxis.get_major_locator().set_params(integer=True)


def _grid(record: PersonRecord) -> tuple[int, int]:
    count = len(measure_names(record))
    cols = min(3, count)
    return math.ceil(count / cols), cols


def draw_measures(container: FigureBase, record: PersonRecord) -> None:
    """One small panel per measure, its values over time."""
    rows, cols = _grid(record)
    axes = container.subplots(rows, cols, squeeze=False).flat
    for name, ax in zip(measure_names(record), axes, strict=False):  # names first: see below
        taken = [m for m in record.measures if m.name == name]
        ax.plot(
            [days(m.measured_on) for m in taken],
            [m.value for m in taken],
            color=MEASURE,
            marker="o",
            markersize=4,
        )
        ax.set_title(f"{name} ({taken[-1].unit})", fontsize=9, parse_math=False)
        ax.tick_params(labelsize=8)
        ax.grid(visible=True, alpha=0.3)
        ax.margins(x=0.15, y=0.25)
        _date_axis(ax, maxticks=5)
        if len({m.measured_on for m in taken}) == 1:  # no range for the date axis to span
            only = days(taken[0].measured_on)
            ax.set_xlim(only - 7, only + 7)
            ax.set_xticks([only])
    for ax in list(axes):  # what zip left: the grid's empty cells
        ax.set_visible(False)


CHARTS: tuple[Chart, ...] = (
    Chart(
        "dose",
        "Dose per week against the plan",
        draw_dose,
        lambda _: 3.0,
        lambda r: bool(weeks(r)),
    ),
    Chart(
        "speed",
        "Speed progression",
        draw_speed,
        lambda _: 3.0,
        lambda r: bool(_backward(r.sessions)),
    ),
    Chart(
        "symptoms",
        "Pain and exertion per session",
        draw_symptoms,
        lambda _: 3.6,
        lambda r: bool(_annotated(r)),
    ),
    Chart(
        "measures",
        "Outcome measures",
        draw_measures,
        lambda r: 2.3 * _grid(r)[0] + 0.3,
        lambda r: bool(r.measures),
    ),
)


def charts_for(record: PersonRecord) -> list[Chart]:
    """The charts with something to show."""
    return [chart for chart in CHARTS if chart.shown(record)]


def png(chart: Chart, record: PersonRecord, *, width_in: float = WIDTH_IN, dpi: int = DPI) -> bytes:
    fig = Figure(figsize=(width_in, chart.height_in(record)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    chart.draw(fig, record)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()


def png_data_uri(chart: Chart, record: PersonRecord) -> str:
    return "data:image/png;base64," + base64.b64encode(png(chart, record)).decode("ascii")
