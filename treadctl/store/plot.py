"""A session as a PNG: speed, incline and heart rate over time, phases shaded.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global state, no display).
matplotlib is the optional `charts` extra: import this module where a chart is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import BinaryIO

from treadctl.core.durations import format_clock
from treadctl.extras import CHARTS, MissingExtraError

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
except ModuleNotFoundError as exc:  # the daemon's install has no matplotlib
    raise MissingExtraError(CHARTS, "a session's chart", exc.name) from exc

from treadctl.store.model import PhaseRecord, Sample, SessionDetail, SessionRecord
from treadctl.store.queries import summarise

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100

BACKWARD_COLOUR = "#f4a261"  # orange band, hatched: visible in greyscale prints too
BACKWARD_HATCH = "///"
FORWARD_COLOURS = ("#e9eef5", "#f7f9fc")  # alternating pale blues tell phases apart
SPEED_COLOUR, TARGET_COLOUR = "#1d3557", "#6c757d"
INCLINE_COLOUR, HEART_COLOUR = "#2a9d8f", "#c1121f"
MIN_LABEL_FRACTION = 0.07  # a phase narrower than this share of the x-axis gets its number only


def _outcome(session: SessionRecord) -> str:
    if session.ended is None:
        return "still running (or never closed)"
    how = session.ended_how or "ended"
    return f"{how} ({session.end_cause})" if session.end_cause and how != "finished" else how


def title(session: SessionRecord, samples: Sequence[Sample], tz: tzinfo | None = None) -> str:
    when = datetime.fromtimestamp(session.started, tz)  # tz None: local time
    summary = summarise(samples)
    return (
        f"{session.program} · {when:%a %d %b %Y %H:%M} · {_outcome(session)} · "
        f"{format_clock(summary.duration_s)} on the belt, {summary.distance_m:.0f} m"
    )


def _spans_from_samples(samples: Sequence[Sample]) -> list[PhaseRecord]:
    """Runs of one walking direction, for sessions recorded without phases (manual ones)."""
    spans: list[PhaseRecord] = []
    for s in samples:
        if spans and spans[-1].walk == s.walk:
            continue
        if spans:
            spans[-1] = replace(spans[-1], ended=s.ts)
        label = "walking backward" if s.walk == "backward" else "walking forward"
        spans.append(PhaseRecord(len(spans), label, s.walk, s.belt, 0.0, 0.0, None, s.ts, None))
    return spans


def _shade(axes: Sequence[Axes], phases: Sequence[PhaseRecord], t0: float, t_end: float) -> None:
    span = max(t_end - t0, 1.0)
    for n, phase in enumerate(phases):
        left = (phase.started - t0) / 60
        right = ((phase.ended if phase.ended is not None else t_end) - t0) / 60
        backward = phase.walk == "backward"
        for ax in axes:
            ax.axvspan(
                left,
                right,
                facecolor=BACKWARD_COLOUR if backward else FORWARD_COLOURS[n % 2],
                alpha=0.35 if backward else 1.0,
                hatch=BACKWARD_HATCH if backward else None,
                edgecolor="#e76f51" if backward else "none",
                linewidth=0,
                zorder=0,
            )
            if n:  # consecutive backward phases would otherwise merge into one band
                ax.axvline(left, color="#8d99ae", lw=0.8, ls=":", zorder=1)
        wide = (right - left) * 60 / span >= MIN_LABEL_FRACTION
        text = f"{n + 1}. {phase.label}" if wide else str(n + 1)  # order, not step index
        axes[0].text(
            (left + right) / 2,
            0.97,
            text if len(text) <= 28 else text[:27] + "…",
            transform=axes[0].get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=8,
            clip_on=True,
        )


def render(
    detail: SessionDetail,
    samples: Sequence[Sample],
    out: Path | BinaryIO,
    *,
    tz: tzinfo | None = None,
) -> None:
    """Write the chart as a WIDTH_PX × HEIGHT_PX PNG."""
    session = detail.session
    t0 = session.started
    t_end = max(
        [session.ended or t0, *(s.ts for s in samples[-1:]), *(p.started for p in detail.phases)]
    )
    minutes = [(s.ts - t0) / 60 for s in samples]

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    speed_ax, incline_ax, heart_ax = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 1.3]}
    )
    axes = (speed_ax, incline_ax, heart_ax)
    fig.suptitle(title(session, samples, tz), fontsize=12)
    _shade(axes, detail.phases or _spans_from_samples(samples), t0, t_end)

    speed_ax.plot(minutes, [s.speed_kmh for s in samples], color=SPEED_COLOUR, lw=1.6)
    speed_ax.plot(minutes, [s.target_kmh for s in samples], color=TARGET_COLOUR, lw=1, ls="--")
    speed_ax.set_ylabel("speed (km/h)")
    top = max([0.5, *(max(s.speed_kmh, s.target_kmh) for s in samples)])
    speed_ax.set_ylim(0, top * 1.25)  # headroom for the phase labels
    speed_ax.legend(
        handles=[
            Line2D([], [], color=SPEED_COLOUR, lw=1.6, label="belt speed"),
            Line2D([], [], color=TARGET_COLOUR, lw=1, ls="--", label="target"),
            Patch(
                facecolor=BACKWARD_COLOUR,
                alpha=0.35,
                hatch=BACKWARD_HATCH,
                edgecolor="#e76f51",
                label="walking backward",
            ),
            Patch(facecolor=FORWARD_COLOURS[0], label="walking forward"),
        ],
        loc="lower right",  # a row above the speed axes, never over the data
        bbox_to_anchor=(1.0, 1.0),
        borderaxespad=0.2,
        ncols=4,
        fontsize=9,
        frameon=False,
    )

    incline_ax.plot(minutes, [s.incline_pct for s in samples], color=INCLINE_COLOUR, lw=1.4)
    incline_ax.set_ylabel("incline (%)")
    incline_ax.set_ylim(bottom=min([0.0, *(s.incline_pct for s in samples)]))
    incline_ax.set_ylim(top=max([1.0, *(s.incline_pct * 1.2 for s in samples)]))

    rates = [(m, s.heart_rate_bpm) for m, s in zip(minutes, samples, strict=True)]
    if any(bpm is not None for _, bpm in rates):
        heart_ax.plot(
            [m for m, _ in rates],
            [float("nan") if bpm is None else bpm for _, bpm in rates],  # gaps where lost
            color=HEART_COLOUR,
            lw=1.4,
        )
    else:
        heart_ax.text(
            0.5,
            0.5,
            "no heart rate recorded",
            transform=heart_ax.transAxes,
            ha="center",
            va="center",
            color="#495057",
            bbox={"facecolor": "white", "edgecolor": "#adb5bd", "boxstyle": "round"},
        )
        heart_ax.set_yticks([])
    heart_ax.set_ylabel("heart rate (bpm)")
    heart_ax.set_xlabel("time since start (min)")
    heart_ax.set_xlim(0, max((t_end - t0) / 60, 0.1))
    for ax in axes:
        ax.grid(visible=True, axis="y", alpha=0.3)
    fig.savefig(out, format="png", dpi=DPI)
