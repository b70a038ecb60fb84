"""The charts of docs/performance.md, drawn from the benches' JSON.

Run: uv run python bench/charts.py [--fleet bench/results/fleet.json]
     [--estop bench/results/estop_mqtt.json] [--out docs/images]

- `fleet-estop.png` (from bench/fleet.py): e-stop latency, MQTT publish -> stop byte, p50 and
  p99 of the real daemons and of the baseline bridge in the same run, against the fleet's size
  (real daemons + load generators, as labelled).
- `fleet-estop-distribution.png` (from bench/fleet.py): every e-stop of the largest fleet and
  the baseline's in the same run, as cumulative curves on a log scale.
- `estop-distribution.png` (from bench/estop_mqtt.py): the distribution of the e-stop
  latencies, treadctl against the baseline, as cumulative curves on a log scale. Drawn from the
  per-trial latencies (`trials`, each with `treadctl_s` and `baseline_s`, and a curve per
  `version` when an A/B run has two); a JSON without them
  gives the percentiles it has instead, as points.

A chart whose JSON is missing is skipped, with a line saying so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from benchkit import RESULTS, ROOT, make_parser
from matplotlib.ticker import FormatStrFormatter, LogLocator

TREADCTL, BASELINE, OTHER = "#1f77b4", "#7f7f7f", "#ff7f0e"
PERCENTILES = (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100))


def fleet_chart(data: dict[str, Any], out: Path) -> Path:
    sizes = sorted(data["sizes"], key=lambda s: s["size"])
    x = [s["size"] for s in sizes]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, style in (("p99_ms", "-"), ("p50_ms", "--")):
        label = key.split("_")[0]
        ax.plot(x, [s["estop"][key] for s in sizes], style, marker="o", color=TREADCTL,
                label=f"treadctl daemons, {label}")  # fmt: skip
        ax.plot(x, [s["baseline"][key] for s in sizes], style, marker="s", color=BASELINE,
                label=f"baseline bridge, {label}")  # fmt: skip
    ax.set_xticks(x, [f"{s['size']}\n({s['daemons']}+{s['generators']})" for s in sizes])
    ax.set_xlabel("treadmills on the broker (real daemons + load generators)")
    ax.set_ylabel("MQTT e-stop → stop byte (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    n = min(s["estop"]["n"] for s in sizes)
    ax.set_title(f"E-stop latency against the fleet's size (≥ {n} e-stops a size)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = out / "fleet-estop.png"
    fig.savefig(target)
    plt.close(fig)
    return target


def estop_chart(data: dict[str, Any], out: Path) -> Path:
    """From bench/estop_mqtt.py's JSON: its per-trial latencies, or else its percentiles."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    trials = data.get("trials")
    if isinstance(trials, list) and trials:
        versions = sorted({str(t.get("version", "")) for t in trials})  # an A/B run has two
        for version, color in zip(versions, (TREADCTL, OTHER), strict=False):
            mine = [1e3 * t["treadctl_s"] for t in trials if str(t.get("version", "")) == version]
            label = f"treadctl ({version} code)" if len(versions) > 1 else "treadctl"
            cumulative(ax, mine, label, color)
        cumulative(ax, [1e3 * t["baseline_s"] for t in trials], "baseline bridge", BASELINE)
        load = [f"{data['daemons']} daemons"] if data.get("daemons") else []
        load += [f"command flood {data['flood_per_s']:g}/s"] if data.get("flood_per_s") else []
        load += ["records in flight"] if data.get("records") else []
        title = f"E-stop latency, {len(trials)} trials each, interleaved"
        title += f" ({', '.join(load)})" if load else ""
    else:  # only the summaries: their percentiles as points
        for key, label, color in (
            ("daemon", "treadctl", TREADCTL),
            ("baseline", "baseline bridge", BASELINE),
        ):
            summary = data[key]
            ax.plot([summary[k] for k, _ in PERCENTILES], [q for _, q in PERCENTILES], "o-",
                    color=color, label=f"{label} (p50, p95, p99, max)")  # fmt: skip
        title = "E-stop latency percentiles (the JSON has no per-trial values)"
    return save_distribution(fig, ax, title, out / "estop-distribution.png")


def fleet_distribution_chart(data: dict[str, Any], out: Path) -> Path:
    """From bench/fleet.py's JSON: every e-stop of the largest fleet, against the baseline's."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    largest = max(data["sizes"], key=lambda s: s["size"])
    cumulative(ax, largest["estop_ms"], f"treadctl ({largest['daemons']} daemons)", TREADCTL)
    cumulative(ax, largest["baseline_ms"], "baseline bridge", BASELINE)
    title = (
        f"E-stop latency with {largest['size']} treadmills on the broker "
        f"({largest['daemons']} daemons + {largest['generators']} load generators)"
    )
    return save_distribution(fig, ax, title, out / "fleet-estop-distribution.png")


def cumulative(ax: Any, values: list[float], label: str, color: str) -> None:
    ordered = sorted(values)
    share = [100 * (i + 1) / len(ordered) for i in range(len(ordered))]
    ax.step(ordered, share, where="post", color=color, label=f"{label}, n = {len(ordered)}")


def save_distribution(fig: Any, ax: Any, title: str, target: Path) -> Path:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # 0.5, 1, 2 rather than powers
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("MQTT e-stop → stop byte (ms, log scale)")
    ax.set_ylabel("trials at or below (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(target)
    plt.close(fig)
    return target


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--fleet", type=Path, default=RESULTS / "fleet.json")
    parser.add_argument("--estop", type=Path, default=RESULTS / "estop_mqtt.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    charts = (
        (args.fleet, fleet_chart),
        (args.fleet, fleet_distribution_chart),
        (args.estop, estop_chart),
    )
    for path, draw in charts:
        if not path.exists():
            print(f"skipped: no {path}")
            continue
        try:
            data = json.loads(path.read_text())
            print(f"written: {draw(data, args.out)}")
        except (ValueError, KeyError, TypeError) as exc:
            print(f"skipped: {path} is not what the chart needs ({exc!r})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
