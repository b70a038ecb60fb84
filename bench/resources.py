"""Resources: the daemon's CPU share and resident memory while a program runs, at 5 Hz and at
50 Hz telemetry, and the time from process start to READY=1.

Run: uv run python bench/resources.py [--seconds 60] [--starts 5] [--json PATH]

`treadctl run --config` as a real subprocess on a simulated Woodway (a pty served by a thread of
this process, so the treadmill's work is not counted), mosquitto on a free port, a 10-minute
backward program running. CPU share = (utime + stime) from /proc/PID/stat over the window / the
window; RSS = VmRSS from /proc/PID/status (max of one reading a second). Start to ready: from
just before the fork to the READY=1 datagram on a real AF_UNIX socket given as NOTIFY_SOCKET
(sent once the treadmill has answered). Baselines in the same run: `python -c pass` for start-up,
and an idle asyncio process (asyncio.run(asyncio.sleep(…))) measured over the same window.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    DaemonSpec,
    ThreadedTreadmill,
    User,
    cpu_s,
    make_parser,
    mosquitto,
    python_env,
    ratio,
    rss_mb,
    start_daemon,
    stop_process,
    table,
    wait,
    workdir,
    write_json,
)

from treadctl.sim.notify_socket import NotifySocket

PROGRAM = """
name = "bench-long"
title = "Ten minutes backward"
[[phases]]
name = "backward"
duration = "10m"
walk = "backward"
speed_kmh = 1.0
"""
IDLE = "import asyncio; asyncio.run(asyncio.sleep(3600))"


def sample(pids: list[int], seconds: float) -> list[dict[str, float]]:
    """CPU share (% of one core) and max RSS (MB) of each process over `seconds`."""
    start = [cpu_s(p) for p in pids]
    t0 = time.monotonic()
    peak = [rss_mb(p) for p in pids]
    while time.monotonic() - t0 < seconds:
        time.sleep(min(1.0, seconds - (time.monotonic() - t0)))
        peak = [max(m, rss_mb(p)) for m, p in zip(peak, pids, strict=True)]
    elapsed = time.monotonic() - t0
    return [
        {"cpu_pct": round(100 * (cpu_s(p) - s) / elapsed, 2), "rss_mb": round(m, 1)}
        for p, s, m in zip(pids, start, peak, strict=True)
    ]


def start_to_ready(
    spec: DaemonSpec, notify: NotifySocket, *, bytecode: bool = True
) -> tuple[float, subprocess.Popen[bytes]]:
    t0 = time.monotonic()
    proc = start_daemon(spec, notify.path, bytecode=bytecode)
    return notify.block_until("READY=1", since=t0) - t0, proc


def python_pass() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=python_env())
    return time.monotonic() - t0


def starts(
    n: int, port: int, sim: ThreadedTreadmill, wd: Path, notify: NotifySocket, *, bytecode: bool
) -> list[float]:
    took = []
    for i in range(n):
        spec = DaemonSpec(f"start{i}", port, sim.path, wd)
        seconds, proc = start_to_ready(spec, notify, bytecode=bytecode)
        took.append(seconds)
        stop_process(proc)
        print(f"  start {i + 1}/{n} (bytecode cache {bytecode}): {seconds:.3f} s", file=sys.stderr)
    return took


def measure(seconds: float, count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with workdir() as wd, mosquitto(wd) as port:
        programs = wd / "programs"
        programs.mkdir()
        (programs / "bench-long.toml").write_text(PROGRAM)
        notify = NotifySocket(wd / "notify")
        sim = ThreadedTreadmill()
        user = User(port)
        try:
            starts(1, port, sim, wd, notify, bytecode=True)  # fills the bytecode cache
            ready_s = starts(count, port, sim, wd, notify, bytecode=True)
            cold_s = starts(max(1, count // 2), port, sim, wd, notify, bytecode=False)
            base_s = [python_pass() for _ in range(count)]
            out["start_to_ready_s"] = {
                "median": round(statistics.median(ready_s), 3),
                "max": round(max(ready_s), 3),
                "all": [round(x, 3) for x in ready_s],
            }
            out["start_to_ready_no_bytecode_s"] = {
                "median": round(statistics.median(cold_s), 3),
                "all": [round(x, 3) for x in cold_s],
            }
            out["python_pass_s"] = round(statistics.median(base_s), 3)
            for rate in (5.0, 50.0):
                spec = DaemonSpec("res", port, sim.path, wd, rate_hz=rate, programs=programs)
                _, proc = start_to_ready(spec, notify)
                idle = subprocess.Popen([sys.executable, "-c", IDLE], env=python_env())
                try:
                    time.sleep(3.2)  # the power-up interlock
                    user.until_ok("res", "start", {"program": "bench-long"})
                    wait(lambda: sim.speed_kmh() <= -0.9, 30, "belt at speed")
                    daemon, baseline = sample([proc.pid, idle.pid], seconds)
                finally:
                    stop_process(proc)
                    idle.kill()
                    idle.wait()
                out[f"{rate:g}hz"] = {"daemon": daemon, "idle_asyncio": baseline}
                print(f"  {rate:g} Hz: {daemon} (idle asyncio {baseline})", file=sys.stderr)
        finally:
            user.close()
            notify.close()
            sim.close()
    return out


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.seconds, args.starts)
    five, fifty = r["5hz"], r["50hz"]
    ready, base = r["start_to_ready_s"], r["python_pass_s"]
    rows: list[list[object]] = []
    for label, d in (("5 Hz", five), ("50 Hz", fifty)):
        dm, idle = d["daemon"], d["idle_asyncio"]
        rows.append([f"CPU % of a core, {label}", dm["cpu_pct"], idle["cpu_pct"], None])
        rows.append(
            [f"RSS MB, {label}", dm["rss_mb"], idle["rss_mb"], ratio(dm["rss_mb"], idle["rss_mb"])]
        )
    rows.append(
        ["start to READY=1, s (median)", ready["median"], base, ratio(ready["median"], base)]
    )
    print(f"daemon resources over {args.seconds:g} s with a program running")
    print(table(["figure", "treadctl", "baseline", "ratio"], rows))
    print("baselines: an idle asyncio process (CPU, RSS); `python -c pass` (start-up)")
    met = {
        "cpu_5hz": five["daemon"]["cpu_pct"] <= 2.0,
        "rss_5hz": five["daemon"]["rss_mb"] <= 60.0,
        "ready": ready["median"] <= 1.5,
    }
    print(f"targets (<= 2 % of a core, <= 60 MB at 5 Hz, ready <= 1.5 s): {met}")
    out = write_json(args.json, "resources", {**r, "seconds": args.seconds, "met": met})
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
