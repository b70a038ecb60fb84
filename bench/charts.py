"""The charts of docs/performance.md, drawn from the benches' JSON.

Run: uv run python bench/charts.py [--fleet bench/results/fleet.json]
     [--estop bench/results/estop_mqtt.json] [--out docs/images]

- `fleet-estop.png` (from bench/fleet.py): e-stop latency, MQTT publish -> stop byte, p50 and
  p99 of the real daemons and of the baseline bridge in the same run, against the fleet's size
  (real daemons + load generators, as labelled).
- `estop-distribution.png` (from bench/estop_mqtt.py): the distribution of the e-stop
  latencies, treadctl against the baseline, as cumulative curves on a log scale. Drawn from the
  per-trial latencies (`trials`, each with `treadctl_s` and `baseline_s`); a JSON without them
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

TREADCTL, BASELINE = "#1f77b4", "#7f7f7f"
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
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    trials = data.get("trials")
    if isinstance(trials, list) and trials:
        for key, label, color in (
            ("treadctl_s", "treadctl", TREADCTL),
            ("baseline_s", "baseline bridge", BASELINE),
        ):
            values = sorted(1e3 * t[key] for t in trials)
            share = [100 * (i + 1) / len(values) for i in range(len(values))]
            ax.step(values, share, where="post", color=color, label=f"{label} (n = {len(values)})")
        title = f"E-stop latency, {len(trials)} trials each, interleaved"
    else:  # only the summaries: their percentiles as points
        for key, label, color in (
            ("daemon", "treadctl", TREADCTL),
            ("baseline", "baseline bridge", BASELINE),
        ):
            summary = data[key]
            ax.plot([summary[k] for k, _ in PERCENTILES], [q for _, q in PERCENTILES], "o-",
                    color=color, label=f"{label} (p50, p95, p99, max)")  # fmt: skip
        title = "E-stop latency percentiles (the JSON has no per-trial values)"
    ax.set_xscale("log")
    ax.set_xlabel("MQTT e-stop → stop byte (ms, log scale)")
    ax.set_ylabel("trials at or below (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    target = out / "estop-distribution.png"
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
    for path, draw in ((args.fleet, fleet_chart), (args.estop, estop_chart)):
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
