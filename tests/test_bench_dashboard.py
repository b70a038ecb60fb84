"""The dashboard's benchmarks run end to end with tiny numbers, so that CI proves they work: real
mosquitto, `treadctl run` on a simulated treadmill, the clinic service and Debian's Chromium, each
benchmark as its own process as a person runs it. The figures are not judged here (they depend on
the machine and its load; docs/performance.md has them), only that each path was measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_process import run_bench

from treadctl.sim.brokers import NEEDS_MOSQUITTO, find_mosquitto

CHROMIUM = Path("/usr/bin/chromium")


def measure(script: str, args: list[str], tmp_path: Path, timeout: float) -> dict[str, Any]:
    if find_mosquitto() is None:
        pytest.skip(NEEDS_MOSQUITTO)
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt install chromium; CI installs it)")
    out = tmp_path / "figures.json"
    stdout = run_bench(script, [*args, "--json", str(out)], tmp_path, timeout)
    assert "written:" in stdout
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


@pytest.mark.timeout(150)
def test_the_dashboard_estop_bench_measures_both_paths(tmp_path: Path) -> None:
    figures = measure("dashboard_estop.py", ["--trials", "2"], tmp_path, 140)
    paths = ("mqtt", "page", "page_from_click_event", "tap_to_click_event", "click_event_to_broker")
    for path in paths:
        assert figures[path]["n"] == 2, path
    # each trial waited for its stop byte (5 s at most); the page's counts from before the tap
    assert 0 < figures["mqtt"]["max_ms"] < 5000
    assert 0 < figures["page_from_click_event"]["p50_ms"] < figures["page"]["p50_ms"] < 5000
    assert figures["ratio"]["p50_ms"] > 0


@pytest.mark.timeout(120)
def test_the_dashboard_fleet_bench_measures_frames_lag_and_the_service(tmp_path: Path) -> None:
    args = ["--treadmills", "3", "--rounds", "1", "--window", "2"]
    figures = measure("dashboard_fleet.py", args, tmp_path, 110)
    for kind in ("quiet", "loaded"):
        assert figures[kind]["frames"]["n"] > 10, kind  # animation frames ran in both windows
        assert figures[kind]["service_rss_mb"] > 10, kind
    lag = figures["update_lag"]
    assert lag["samples_sent"] >= 3 * 10  # 3 treadmills, 2 s at 10 Hz, give or take the edges
    assert lag["subscriber"]["n"] >= lag["samples_sent"] // 2
    assert lag["page_dom"]["n"] >= lag["samples_sent"] // 2  # the tiles showed the samples
    assert 0 < lag["page_dom"]["p50_ms"] < 5000
