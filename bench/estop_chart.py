"""The e-stop latency distributions of bench/estop_mqtt.py results, treadctl against the
baseline of the same run, as a chart (one panel a result; the share of trials at or under each
latency, log scale).

Run: uv run python bench/estop_chart.py OUT.png RESULT.json[=TITLE]...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt


def curves(result: dict[str, Any]) -> dict[str, list[float]]:
    """Latencies (ms) by group: baseline, and treadctl by version and records in flight."""
    out: dict[str, list[float]] = {}
    for t in result["trials"]:
        records = " (records in flight)" if t.get("record_in_flight") is not None else ""
        version = "before" if t.get("version") == "old" else "now"
        out.setdefault(f"treadctl {version}{records}", []).append(t["treadctl_s"] * 1e3)
        out.setdefault("baseline bridge", []).append(t["baseline_s"] * 1e3)
    return out


def main() -> int:
    out, specs = Path(sys.argv[1]), sys.argv[2:]
    fig, axes = plt.subplots(1, len(specs), figsize=(6.5 * len(specs), 4.2), squeeze=False)
    for ax, spec in zip(axes[0], specs, strict=True):
        path, _, title = spec.partition("=")
        for label, values in sorted(curves(json.loads(Path(path).read_text())).items()):
            ordered = sorted(values)
            share = [(n + 1) / len(ordered) for n in range(len(ordered))]
            ax.step(ordered, share, where="post", label=f"{label} (n={len(ordered)})")
        ax.set_xscale("log")
        ax.set_xlabel("MQTT publish -> stop byte at the treadmill (ms)")
        ax.set_ylabel("share of trials at or under")
        ax.set_title(title or path, fontsize=10)
        ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
        ax.grid(visible=True, which="both", linewidth=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
