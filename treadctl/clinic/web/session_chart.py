"""One session's speed, incline and heart rate over time, as a PNG for its page: drawn from
the samples of the daemon's session document, with the deviations (pauses, stops, e-stops,
faults) marked where they happened. matplotlib's object API as in report/charts.py, whose
colours it shares; told apart by line style as well, for greyscale prints."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from treadctl.extras import CLINIC, MissingExtraError

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ModuleNotFoundError as exc:  # the daemon's install has no matplotlib
    raise MissingExtraError(CLINIC, "a session's chart", exc.name) from exc

from treadctl.clinic.report.charts import ADVERSE, BORG, PAIN_AFTER, PRESCRIBED, SPEED
from treadctl.clinic.views import Deviation

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 5.4, 100
MAX_POINTS = 2000  # a 30-minute session at 5 Hz has 9000 samples; a screen shows far fewer


def _value(sample: Mapping[str, Any], key: str) -> float | None:
    value = sample.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _series(samples: Sequence[Mapping[str, Any]], key: str, t0: float) -> tuple[list[float], ...]:
    xs: list[float] = []
    ys: list[float] = []
    for sample in samples:
        ts, value = _value(sample, "ts"), _value(sample, key)
        if ts is not None and value is not None:
            xs.append((ts - t0) / 60)
            ys.append(value)
    return xs, ys


def _samples(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = document.get("samples")
    if not isinstance(raw, list):
        return []
    kept = [s for s in raw if isinstance(s, Mapping) and _value(s, "ts") is not None]
    step = max(1, math.ceil(len(kept) / MAX_POINTS))
    return kept[::step]


def session_png(document: Mapping[str, Any], deviations: Iterable[Deviation] = ()) -> bytes:
    """The chart; with no samples, a chart that says so (the page shows it all the same)."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    speed_ax, incline_ax, heart_ax = fig.subplots(
        3, 1, sharex=True, height_ratios=[2.2, 1, 1.2], squeeze=True
    )
    samples = _samples(document)
    t0 = _value(samples[0], "ts") if samples else None
    if t0 is None:
        speed_ax.text(0.5, 0.5, "no samples in this session's record", ha="center", va="center")
    else:
        speed_ax.plot(*_series(samples, "speed_kmh", t0), color=SPEED, linewidth=1.6, label="belt")
        speed_ax.plot(
            *_series(samples, "target_kmh", t0),
            color=PRESCRIBED,
            linestyle="--",
            linewidth=1.2,
            label="target",
        )
        incline_ax.plot(*_series(samples, "incline_pct", t0), color=BORG, linewidth=1.4)
        heart = _series(samples, "heart_rate_bpm", t0)
        heart_ax.plot(*heart, color=PAIN_AFTER, linewidth=1.4)
        if not heart[0]:
            heart_ax.text(0.5, 0.5, "no heart rate", ha="center", va="center", fontsize=9)
        for deviation in deviations:
            for ax in (speed_ax, incline_ax, heart_ax):
                ax.axvline(deviation.at_s / 60, color=ADVERSE, linestyle=":", linewidth=1.2)
            speed_ax.annotate(
                f"{deviation.kind} ({deviation.cause})",
                (deviation.at_s / 60, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -3),
                textcoords="offset points",
                va="top",
                fontsize=8,
                color=ADVERSE,
                annotation_clip=False,
            )
        speed_ax.legend(loc="lower right", fontsize=8, frameon=False)
    speed_ax.set_ylabel("speed (km/h)")
    speed_ax.set_ylim(bottom=0)
    incline_ax.set_ylabel("incline (%)")
    heart_ax.set_ylabel("heart rate (bpm)")
    heart_ax.set_xlabel("minutes since the start (pauses included)")
    for ax in (speed_ax, incline_ax, heart_ax):
        ax.grid(visible=True, alpha=0.3)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
