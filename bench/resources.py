"""Resources: the daemon's CPU share and resident memory while a program runs, at 5 Hz and at
50 Hz telemetry, and the time from process start to READY=1.

Run: uv run python bench/resources.py [--seconds 60] [--starts 5] [--json PATH]

`treadctl run --config` as a real subprocess on a simulated Woodway (a pty served by a thread of
this process, so the treadmill's work is not counted), mosquitto on a free port, a 10-minute
backward program running. CPU share = (utime + stime) from /proc/PID/stat over the window / the
window; RSS = VmRSS from /proc/PID/status (max of one reading a second). Start to ready: from
just before the fork to the READY=1 datagram on a real AF_UNIX socket given as NOTIFY_SOCKET
(sent once the treadmill has answered). Baselines in the same run: for CPU and RSS,
bench/minimal_daemon.py (pyserial + paho-mqtt doing the same polling of its own simulated
Woodway and the same publishing at the same rate), and an idle asyncio process (the
interpreter's floor), measured over the same window; `python -c pass` for start-up.

Start to ready is measured three ways: with bytecode compiled for everything (an installed
package); with none for treadctl's own modules (their cached bytecode removed before each start,
so each compiles them from source; the libraries' bytecode is there), which issue 20's
<= 0.5 s target is about; and with none at all (the venv's libraries compiled at each start too).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    PYCACHE,
    ROOT,
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

from treadctl.sim.brokers import HOST
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


def forget_own_bytecode() -> None:
    """Remove treadctl's modules from the bytecode cache (PYTHONPYCACHEPREFIX mirrors the
    source tree), so that the next start compiles them from source."""
    shutil.rmtree(PYCACHE / (ROOT / "treadctl").relative_to("/"), ignore_errors=True)


def minimal_daemon(port: int, sim: ThreadedTreadmill, rate_hz: float) -> subprocess.Popen[bytes]:
    script = str(Path(__file__).with_name("minimal_daemon.py"))
    args = [sys.executable, script, HOST, str(port), "res", sim.path, str(rate_hz)]
    return subprocess.Popen(args, env=python_env())


def python_pass() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=python_env())
    return time.monotonic() - t0


def starts(
    n: int,
    port: int,
    sim: ThreadedTreadmill,
    wd: Path,
    notify: NotifySocket,
    *,
    bytecode: bool,
    own_cold: bool = False,
) -> list[float]:
    """`bytecode`: the cache is used and filled; `own_cold`: but without treadctl's own."""
    took = []
    for i in range(n):
        if own_cold:
            forget_own_bytecode()
        spec = DaemonSpec(f"start{i}", port, sim.path, wd)
        seconds, proc = start_to_ready(spec, notify, bytecode=bytecode)
        took.append(seconds)
        stop_process(proc)
        how = "treadctl compiled at start" if own_cold else f"bytecode cache {bytecode}"
        print(f"  start {i + 1}/{n} ({how}): {seconds:.3f} s", file=sys.stderr)
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
            own_s = starts(count, port, sim, wd, notify, bytecode=True, own_cold=True)
            cold_s = starts(max(1, count // 2), port, sim, wd, notify, bytecode=False)
            base_s = [python_pass() for _ in range(count)]
            out["start_to_ready_s"] = spread(ready_s)
            out["start_to_ready_no_own_bytecode_s"] = spread(own_s)
            out["start_to_ready_no_bytecode_s"] = spread(cold_s)
            out["python_pass_s"] = round(statistics.median(base_s), 3)
            for rate in (5.0, 50.0):
                out[f"{rate:g}hz"] = side_by_side(
                    rate, seconds, port=port, wd=wd, notify=notify, user=user, sim=sim
                )
        finally:
            user.close()
            notify.close()
            sim.close()
    return out


def spread(seconds: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(seconds), 3),
        "max": round(max(seconds), 3),
        "all": [round(x, 3) for x in seconds],
    }


def side_by_side(
    rate: float,
    seconds: float,
    *,
    port: int,
    wd: Path,
    notify: NotifySocket,
    user: User,
    sim: ThreadedTreadmill,
) -> dict[str, Any]:
    """treadctl running a program, the minimal daemon and an idle asyncio process, sampled
    over the same window."""
    spec = DaemonSpec("res", port, sim.path, wd, rate_hz=rate, programs=wd / "programs")
    _, proc = start_to_ready(spec, notify)
    idle = subprocess.Popen([sys.executable, "-c", IDLE], env=python_env())
    own = ThreadedTreadmill()
    minimal = minimal_daemon(port, own, rate)
    try:
        time.sleep(3.2)  # the power-up interlock
        user.until_ok("res", "start", {"program": "bench-long"})
        wait(lambda: sim.speed_kmh() <= -0.9, 30, "belt at speed")
        wait(lambda: own.speed_kmh() <= -0.9, 30, "the minimal daemon's belt at speed")
        daemon, least, floor = sample([proc.pid, minimal.pid, idle.pid], seconds)
    finally:
        stop_process(proc)
        for other in (idle, minimal):
            other.kill()
            other.wait()
        own.close()
    print(f"  {rate:g} Hz: {daemon} (minimal {least}, idle {floor})", file=sys.stderr)
    return {"daemon": daemon, "minimal_daemon": least, "idle_asyncio": floor}


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.seconds, args.starts)
    five, fifty = r["5hz"], r["50hz"]
    base = r["python_pass_s"]
    rows: list[list[object]] = []
    for label, d in (("5 Hz", five), ("50 Hz", fifty)):
        dm, least, idle = d["daemon"], d["minimal_daemon"], d["idle_asyncio"]
        for key, name in (("cpu_pct", "CPU % of a core"), ("rss_mb", "RSS MB")):
            row = [f"{name}, {label}", dm[key], least[key], ratio(dm[key], least[key])]
            rows.append([*row, idle[key]])
    for key, label in (
        ("start_to_ready_s", "start to READY=1, s (median)"),
        ("start_to_ready_no_own_bytecode_s", "  same, no bytecode for treadctl's own modules"),
        ("start_to_ready_no_bytecode_s", "  same, no bytecode at all"),
    ):
        rows.append([label, r[key]["median"], base, ratio(r[key]["median"], base), None])
    print(f"daemon resources over {args.seconds:g} s with a program running")
    print(table(["figure", "treadctl", "baseline", "ratio", "idle asyncio"], rows))
    print("baselines: bench/minimal_daemon.py (CPU, RSS); `python -c pass` (start-up)")
    met = {
        "cpu_5hz": five["daemon"]["cpu_pct"] <= 1.0,
        "rss_5hz": five["daemon"]["rss_mb"] <= 50.0,
        "ready_no_own_bytecode": r["start_to_ready_no_own_bytecode_s"]["median"] <= 0.5,
    }
    print(f"targets (<= 1 % of a core, <= 50 MB at 5 Hz, ready <= 0.5 s): {met}")
    out = write_json(args.json, "resources", {**r, "seconds": args.seconds, "met": met})
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
