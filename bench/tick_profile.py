"""Where the running daemon's CPU goes, function by function: the CPU time spent in named
functions of `treadctl run` while a program runs at 5 Hz telemetry.

Run: uv run python bench/tick_profile.py [--seconds 30] [--json PATH] [--function MOD:QUALNAME ...]

A profiler (cProfile, py-spy) charges every call alike and inflates code made of many small
calls; here only the named functions are timed, each call with two reads of `time.thread_time`
(about a microsecond). The daemon is started as bench/resources.py starts it (a simulated
Woodway on a pty served by a thread of this process, mosquitto on a free port, the 10-minute
backward program); a `sitecustomize` module on its PYTHONPATH, written to a temporary
directory, wraps the functions on SIGUSR1 and writes what it measured on SIGUSR2. Times are
inclusive (a function's callees count in it). A function is seen where it is looked up at the
call: a bound method handed over as a callback at start-up, or a function imported by name
into another module (`from m import f`), is not.

Over the same window: the CPU of each of the daemon's threads and of bench/minimal_daemon.py
(the CPU baseline of resources.py), from /proc/PID/task/*/schedstat (nanoseconds).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    DaemonSpec,
    ThreadedTreadmill,
    User,
    make_parser,
    mosquitto,
    ratio,
    start_daemon,
    stop_process,
    table,
    wait,
    workdir,
    write_json,
)
from resources import PROGRAM, minimal_daemon

from treadctl.sim.notify_socket import NotifySocket

FUNCTIONS = (
    "treadctl.control.controller:Controller._snapshot",
    "treadctl.control.controller:Controller._timed_out",
    "treadctl.control.publication:Publisher.tell",
    "treadctl.mqtt.outbox:Outbox.state",
    "treadctl.mqtt.outbox:Outbox._send_sample",
    "paho.mqtt.client:Client.publish",
    "paho.mqtt.client:Client._sock_send",
    "treadctl.core.runner:ProgramRunner.poll",
    "treadctl.core.safety:SafetySupervisor.observe",
    "treadctl.core.safety:SafetySupervisor.next_speed",
    "treadctl.drivers.session:_Chain.send",
    "treadctl.drivers.session:_Chain.received",
    "treadctl.transport.serial:SerialLink.write",
)

SITECUSTOMIZE = """
import collections, functools, importlib, json, os, signal, time

_spent = collections.defaultdict(float)
_calls = collections.Counter()
_on = [False]
_since = [0.0, 0.0]


def _wrap(spec):
    module, qualname = spec.split(":")
    owner = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        if not _on[0]:
            return inner(*args, **kwargs)
        t0 = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            _spent[spec] += time.thread_time() - t0
            _calls[spec] += 1

    setattr(owner, name, timed)


def _start(*_):
    for spec in os.environ.pop("TICK_PROFILE_FUNCTIONS").split(","):
        _wrap(spec)
    _since[:] = [time.thread_time(), time.monotonic()]
    _on[0] = True


def _stop(*_):
    _on[0] = False
    cpu, wall = time.thread_time() - _since[0], time.monotonic() - _since[1]
    out = {"main_thread_cpu_s": cpu, "window_s": wall,
           "functions": {k: {"cpu_s": v, "calls": _calls[k]} for k, v in _spent.items()}}
    path = os.environ["TICK_PROFILE_OUT"]
    with open(path + ".part", "w") as f:
        json.dump(out, f)
    os.replace(path + ".part", path)


signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _stop)
"""


def thread_cpu_ns(pid: int) -> dict[str, int]:
    """CPU time of each thread of `pid` so far (name:tid -> ns)."""
    out = {}
    for base in Path(f"/proc/{pid}/task").iterdir():
        out[f"{base.joinpath('comm').read_text().strip()}:{base.name}"] = int(
            base.joinpath("schedstat").read_text().split()[0]
        )
    return out


def measure(seconds: float, functions: list[str]) -> dict[str, Any]:
    with workdir() as wd, mosquitto(wd) as port:
        programs = wd / "programs"
        programs.mkdir()
        (programs / "bench-long.toml").write_text(PROGRAM)
        site = wd / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        out = wd / "profile.json"
        env = {
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "TICK_PROFILE_FUNCTIONS": ",".join(functions),
            "TICK_PROFILE_OUT": str(out),
        }
        notify = NotifySocket(wd / "notify")
        sim, own, user = ThreadedTreadmill(), ThreadedTreadmill(), User(port)
        spec = DaemonSpec("prof", port, sim.path, wd, rate_hz=5.0, programs=programs)
        t0 = time.monotonic()
        daemon = start_daemon(spec, notify.path, extra_env=env)
        minimal = minimal_daemon(port, own, 5.0)
        try:
            notify.block_until("READY=1", since=t0)
            time.sleep(3.2)  # the power-up interlock
            user.until_ok("prof", "start", {"program": "bench-long"})
            wait(lambda: sim.speed_kmh() <= -0.9, 30, "belt at speed")
            wait(lambda: own.speed_kmh() <= -0.9, 30, "the minimal daemon's belt at speed")
            daemon.send_signal(signal.SIGUSR1)
            threads0, least0 = thread_cpu_ns(daemon.pid), thread_cpu_ns(minimal.pid)
            w0 = time.monotonic()
            time.sleep(seconds)
            daemon.send_signal(signal.SIGUSR2)
            threads1, least1 = thread_cpu_ns(daemon.pid), thread_cpu_ns(minimal.pid)
            window = time.monotonic() - w0
            wait(out.exists, 10, "the daemon's profile")  # renamed into place when whole
            found: dict[str, Any] = json.loads(out.read_text())
        finally:
            stop_process(daemon)
            minimal.kill()
            minimal.wait()
            for thing in (user, notify, sim, own):
                thing.close()

    def pct(a: dict[str, int], b: dict[str, int]) -> dict[str, float]:
        return {k: round(100 * (b[k] - a.get(k, 0)) / 1e9 / window, 3) for k in b}

    found["threads_pct"] = pct(threads0, threads1)
    found["minimal_daemon_pct"] = round(sum(pct(least0, least1).values()), 3)
    return found


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--function", action="append", help="MODULE:QUALNAME (repeatable)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    found = measure(args.seconds, args.function or list(FUNCTIONS))
    window = found["window_s"]
    main_pct = 100 * found["main_thread_cpu_s"] / window
    daemon_pct = sum(found["threads_pct"].values())
    print(f"treadctl run, 5 Hz telemetry, a program running, {window:.0f} s")
    print(
        f"  the daemon {daemon_pct:.3f} % of a core (threads: {found['threads_pct']}); "
        f"main thread {main_pct:.3f} %; minimal daemon {found['minimal_daemon_pct']} % "
        f"(ratio {ratio(daemon_pct, found['minimal_daemon_pct'])})"
    )
    rows: list[list[object]] = [
        [
            name,
            round(1000 * f["cpu_s"] / window, 3),
            round(f["calls"] / window, 1),
            round(1e6 * f["cpu_s"] / f["calls"], 1) if f["calls"] else None,
            round(100 * f["cpu_s"] / found["main_thread_cpu_s"], 1),
        ]
        for name, f in sorted(found["functions"].items(), key=lambda kv: -kv[1]["cpu_s"])
    ]
    print(table(["function (inclusive)", "ms CPU/s", "calls/s", "us a call", "% of main"], rows))
    print(f"written: {write_json(args.json, 'tick_profile', found)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
