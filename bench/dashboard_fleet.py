"""The dashboard's overview with many treadmills at 10 Hz telemetry: frame times and update lag
measured in the browser, and the clinic service's CPU and memory.

Run: uv run python bench/dashboard_fleet.py [--treadmills 20] [--rate 10] [--rounds 3]
     [--window 10] [--json PATH]

Real processes: mosquitto on a free port (`set_tcp_nodelay true`), the clinic service
(`treadctl clinic`, SQLite in a temporary directory), Debian's Chromium on `/` (a 1180×820
tablet viewport), driven over CDP by Playwright. The treadmills are load generators in this
process, one MQTT connection each, publishing what a daemon running a program publishes, built
with the daemon's own payload code (Snapshot.state_dict / telemetry_dict, the events' as_dict):
the retained `online` (last will: `offline`), the retained state, `session_started`, a
`phase_started` and a new state every 10 s, and telemetry at `--rate` Hz with `ts` stamped just
before the publish. Each sample carries a new heart rate (60-209 bpm, cycling), so every sample
changes its tile (the most work for the page) and the text shown names the sample.

Windows of `--window` s, `--rounds` times each, alternating: quiet (every treadmill online, its
state retained, but no telemetry: the baseline) and loaded (telemetry). 1 s is left between
windows for the tiles to change over. Measured, per window:

- frame times: the intervals between requestAnimationFrame callbacks in the page (p50, p99,
  max), and long tasks (> 50 ms) from a PerformanceObserver, both added by this benchmark with
  add_init_script (the page is not edited);
- update lag (loaded windows): from the telemetry's `ts` to the moment a MutationObserver on the
  tiles sees the tile's heart-rate text change to that sample's value (the DOM updated; also to
  the next animation frame after it), both on the browser's wall clock
  (performance.timeOrigin + now), the same machine's clock as `ts`. The service sends a tile at
  most 10 times a second, so some samples are replaced by a newer one before they are sent:
  the share shown is reported. Baseline: a plain paho-mqtt subscriber in its own process
  (bench/telemetry_subscriber.py), from `ts` to the message's arrival, same messages;
- the clinic service's CPU (Δ utime+stime from /proc/PID/stat over the window, % of one core)
  and RSS (VmRSS, sampled every second, the highest); Chromium's CPU (its whole process group).
"""

from __future__ import annotations

import bisect
import contextlib
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import make_parser, mosquitto, pct, ratio, stop_process, table, workdir, write_json
from dashkit import Chromium, Clinic, chromium, clinic_service, login
from loadgen import PREFIX, Load
from playwright.sync_api import Page, expect

from treadctl.sim.brokers import HOST

SUBSCRIBER = Path(__file__).with_name("telemetry_subscriber.py")
SETTLE_S = 1.0

PROBE = Path(__file__).with_name("dashboard_probe.js")


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Window:
    kind: str  # quiet | loaded
    start: float  # wall clock, s
    end: float
    frames: list[float]  # ms
    long_tasks: list[float]  # ms
    shown: list[tuple[str, int, float, float | None]]  # device, bpm, DOM (s), next frame (s)
    arrived: list[tuple[str, int, float]]  # device, bpm, the tile event in the page (s)
    service_cpu_pct: float
    browser_cpu_pct: float
    service_rss_mb: float


def overview(browser: Chromium, clinic: Clinic, n: int) -> Page:
    page = browser.new_page()
    page.add_init_script(path=PROBE)
    login(page, clinic)
    page.goto(clinic.base + "/")
    expect(page.locator("article.tile")).to_have_count(n, timeout=30_000)
    return page


def window(kind: str, seconds: float, page: Page, clinic: Clinic, browser: Chromium) -> Window:
    page.evaluate("window.__bench.take()")
    start, cpu0, bcpu0 = time.time(), clinic.cpu_s(), browser.cpu_s()
    rss = clinic.rss_mb()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        rss = max(rss, clinic.rss_mb())
    end, cpu1, bcpu1 = time.time(), clinic.cpu_s(), browser.cpu_s()
    got: dict[str, Any] = page.evaluate("window.__bench.take()")
    if not got["longtask"]:
        print("  (no PerformanceObserver for long tasks in this browser)", file=sys.stderr)
    shown = []
    for device, text, dom, frame in got["shown"]:
        if m := re.fullmatch(r"(\d+) bpm", text):
            shown.append((device, int(m[1]), dom / 1000, None if frame is None else frame / 1000))
    arrived = [(d, int(bpm), at / 1000) for d, bpm, at in got["arrived"] if bpm is not None]
    span = end - start
    return Window(
        kind,
        start,
        end,
        [f[1] for f in got["frames"] if start * 1000 <= f[0] <= end * 1000],
        [d for at, d in got["long"] if start * 1000 <= at <= end * 1000],
        shown,
        arrived,
        100 * (cpu1 - cpu0) / span,
        100 * (bcpu1 - bcpu0) / span,
        rss,
    )


@dataclass
class PageLags:
    """Lags (s) from each sample's `ts`, over the loaded windows."""

    event: list[float] = field(default_factory=list)  # the tile event reaching the page
    dom: list[float] = field(default_factory=list)  # the tile's DOM showing it
    frame: list[float] = field(default_factory=list)  # the next animation frame after that
    sent: int = 0  # samples sent in the loaded windows


class Sent:
    """Every sample's `ts` by treadmill and heart rate, to name the sample a page shows."""

    def __init__(self, load: Load) -> None:
        self._ts: dict[tuple[str, int], list[float]] = defaultdict(list)
        for t in load.treadmills:
            for ts, bpm in t.sent:
                self._ts[t.device, bpm].append(ts)  # in order
        self._all = sorted(ts for t in load.treadmills for ts, _ in t.sent)

    def ts(self, w: Window, device: str, bpm: int, at: float) -> float | None:
        """The `ts` of the sample of that heart rate sent last before `at`, in the window."""
        stamps = self._ts.get((device, bpm), [])
        k = bisect.bisect_right(stamps, at + 0.001) - 1  # ts is rounded to the ms
        return stamps[k] if k >= 0 and w.start <= stamps[k] <= w.end else None

    def count(self, w: Window) -> int:
        return bisect.bisect_right(self._all, w.end) - bisect.bisect_left(self._all, w.start)


def page_lags(windows: list[Window], load: Load) -> PageLags:
    sent, lags = Sent(load), PageLags()
    for w in (w for w in windows if w.kind == "loaded"):
        lags.sent += sent.count(w)
        for device, bpm, at in w.arrived:
            if (ts := sent.ts(w, device, bpm, at)) is not None:
                lags.event.append(at - ts)
        for device, bpm, dom, frame in w.shown:
            if (shown := sent.ts(w, device, bpm, dom)) is not None:
                lags.dom.append(dom - shown)
                if frame is not None:
                    lags.frame.append(frame - shown)
    return lags


def subscriber_lags(arrivals: str, windows: list[Window]) -> list[float]:
    loaded = [(w.start, w.end) for w in windows if w.kind == "loaded"]
    lags = []
    for line in arrivals.splitlines():
        at, ts, _topic = line.split()
        if any(a <= float(ts) <= b for a, b in loaded):
            lags.append(float(at) - float(ts))
    return lags


@contextlib.contextmanager
def subscriber(wd: Path, port: int) -> Iterator[Path]:
    out = wd / "subscriber.txt"
    proc = subprocess.Popen(
        [sys.executable, str(SUBSCRIBER), HOST, str(port), f"{PREFIX}/+/telemetry", str(out)]
    )
    try:
        yield out
    finally:
        stop_process(proc, 10)


def measure(n: int, rate: float, rounds: int, seconds: float) -> tuple[list[Window], Load, str]:
    windows: list[Window] = []
    with workdir() as wd, mosquitto(wd) as port:
        load = Load(port, n, rate)
        try:
            load.start()
            with (
                subscriber(wd, port) as heard,
                clinic_service(wd, port, PREFIX) as clinic,
                chromium(wd / "chromium") as browser,
            ):
                page = overview(browser, clinic, n)
                for r in range(rounds):
                    for kind in random.sample(["quiet", "loaded"], 2):
                        if kind == "loaded":
                            load.telemetry.set()
                        else:
                            load.telemetry.clear()
                        time.sleep(SETTLE_S)
                        windows.append(window(kind, seconds, page, clinic, browser))
                    print(f"  round {r + 1}/{rounds}", file=sys.stderr)
                load.telemetry.clear()
            arrivals = heard.read_text()  # the subscriber wrote it on SIGTERM
        finally:
            load.close()
        return windows, load, arrivals


# --- figures -----------------------------------------------------------------------------------


def ms(values: list[float], scale: float = 1.0) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    v = [x * scale for x in values]
    return {
        "n": len(v),
        "p50_ms": round(statistics.median(v), 2),
        "p99_ms": round(pct(v, 99), 2),
        "max_ms": round(max(v), 2),
    }


def kind_figures(windows: list[Window], kind: str) -> dict[str, Any]:
    ws = [w for w in windows if w.kind == kind]
    span = sum(w.end - w.start for w in ws)
    return {
        "windows": len(ws),
        "seconds": round(span, 1),
        "frames": ms([f for w in ws for f in w.frames]),
        "fps": round(sum(len(w.frames) for w in ws) / span, 1) if span else None,
        "long_tasks": {
            "n": sum(len(w.long_tasks) for w in ws),
            "total_ms": round(sum(d for w in ws for d in w.long_tasks), 1),
            "max_ms": round(max((d for w in ws for d in w.long_tasks), default=0.0), 1),
        },
        "service_cpu_pct": round(statistics.mean(w.service_cpu_pct for w in ws), 2),
        "service_rss_mb": round(max(w.service_rss_mb for w in ws), 1),
        "browser_cpu_pct": round(statistics.mean(w.browser_cpu_pct for w in ws), 1),
    }


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--treadmills", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0, help="telemetry, Hz (10)")
    parser.add_argument("--rounds", type=int, default=3, help="quiet + loaded windows (3)")
    parser.add_argument("--window", type=float, default=10.0, help="each window, s (10)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.treadmills < 1 or args.rounds < 1 or args.window <= 0 or not 0 < args.rate <= 50:
        parser.error("--treadmills, --rounds >= 1; --window > 0; 0 < --rate <= 50")
    # 20 treadmills' network threads share this process: with the default 5 ms GIL switch
    # interval a sample waited up to 150 ms to leave (measured), 1 ms as the daemon sets it.
    sys.setswitchinterval(0.001)
    windows, load, heard = measure(args.treadmills, args.rate, args.rounds, args.window)
    quiet, loaded = kind_figures(windows, "quiet"), kind_figures(windows, "loaded")
    lags = page_lags(windows, load)
    event_lag, page_lag, frame_lag = ms(lags.event, 1e3), ms(lags.dom, 1e3), ms(lags.frame, 1e3)
    base_lag = ms(subscriber_lags(heard, windows), 1e3)
    keys = ["p50_ms", "p99_ms", "max_ms"]
    print(
        f"dashboard overview, {args.treadmills} treadmills at {args.rate:g} Hz telemetry "
        f"({args.rounds} x {args.window:g} s windows each, interleaved)"
    )
    print(
        table(
            ["frame interval (rAF)", "n", *keys, "fps", "long tasks"],
            [
                [
                    "baseline: online, no telemetry",
                    quiet["frames"]["n"],
                    *(quiet["frames"][k] for k in keys),
                    quiet["fps"],
                    quiet["long_tasks"]["n"],
                ],
                [
                    "telemetry",
                    loaded["frames"]["n"],
                    *(loaded["frames"][k] for k in keys),
                    loaded["fps"],
                    loaded["long_tasks"]["n"],
                ],
                [
                    "ratio",
                    None,
                    *(ratio(loaded["frames"][k] or 0, quiet["frames"][k] or 0) for k in keys),
                    None,
                    None,
                ],
            ],
        )
    )
    print(
        table(
            ["update lag, from telemetry ts", "n", *keys],
            [
                ["baseline: paho subscriber", base_lag["n"], *(base_lag[k] for k in keys)],
                ["page: tile event received", event_lag["n"], *(event_lag[k] for k in keys)],
                ["page: tile's DOM", page_lag["n"], *(page_lag[k] for k in keys)],
                ["page: next frame after it", frame_lag["n"], *(frame_lag[k] for k in keys)],
                [
                    "ratio DOM / subscriber",
                    None,
                    *(ratio(page_lag[k] or 0, base_lag[k] or 0) for k in keys),
                ],
            ],
        )
    )
    print(f"samples shown in the page: {page_lag['n']} of {lags.sent} sent in the loaded windows")
    print(
        table(
            ["resources (% of a core; MB)", "service CPU", "service RSS max", "Chromium CPU"],
            [
                [kind, f["service_cpu_pct"], f["service_rss_mb"], f["browser_cpu_pct"]]
                for kind, f in (("baseline: no telemetry", quiet), ("telemetry", loaded))
            ],
        )
    )
    out = write_json(
        args.json,
        "dashboard_fleet",
        {
            "treadmills": args.treadmills,
            "rate_hz": args.rate,
            "rounds": args.rounds,
            "window_s": args.window,
            "quiet": quiet,
            "loaded": loaded,
            "frame_ratio": {
                k: ratio(loaded["frames"][k] or 0, quiet["frames"][k] or 0) for k in keys
            },
            "update_lag": {
                "page_tile_event": event_lag,
                "page_dom": page_lag,
                "page_next_frame": frame_lag,
                "subscriber": base_lag,
                "ratio_dom": {k: ratio(page_lag[k] or 0, base_lag[k] or 0) for k in keys},
                "samples_shown": page_lag["n"],
                "samples_sent": lags.sent,
            },
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
