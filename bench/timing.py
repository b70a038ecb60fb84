"""Timing: phase changes against the schedule in real time, and drift over a 60-minute program
on an accelerated clock.

Run: uv run python bench/timing.py [--phases 30] [--phase-s 2] [--minutes 60] [--scale 60]
                                   [--json PATH]

Real time: `treadctl run --config` as a real subprocess (10 Hz telemetry, mosquitto on a free
port) runs a program of short backward phases whose incline alternates 0 % / 1 %. For each
phase k the schedule is t0 + (sum of the earlier phases' durations), t0 being the first phase's
start. Two errors: the `phase_started` event's timestamp (the daemon's clock, to the
microsecond) against the schedule, and the arrival of the phase's incline command on the
treadmill's side of the pty (the wire, stamped by this process) against the same schedule.

Accelerated: the controller in this process (the program runner with time_scale, the Woodway
driver on a pty) runs a program of one-minute phases lasting `--minutes` of program time at
`--scale`× speed; each phase_started is stamped as the controller emits it. Drift: the slope of
the error against program time (ms per program hour), and the last phases' error minus the
first ones'. Baseline for both: asyncio's own timer error, `loop.call_at` for the same
boundaries in the same run (what any asyncio program scheduling those instants gets).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    DaemonSpec,
    ThreadedTreadmill,
    User,
    cancel,
    make_parser,
    mosquitto,
    start_daemon,
    stop_process,
    table,
    workdir,
    write_json,
)

from treadctl import logs
from treadctl.config.models import Settings
from treadctl.control.controller import Controller
from treadctl.core import commands as c
from treadctl.core.state import Event, Snapshot
from treadctl.devices import device_profile, open_device, safety_rules
from treadctl.drivers.trackmaster_codec import Op
from treadctl.programs.library import parse_program

INTERLOCK_S = 3.2
TARGET_MS = 2.0  # issue 20: p99 off schedule, event and wire


def program_text(name: str, pairs: int, phase_s: float) -> str:
    phase = 'name = "{n}"\nduration = {d}\nwalk = "backward"\nspeed_kmh = 1.0\nincline_pct = {i}\n'
    return (
        f'name = "{name}"\ntitle = "Short phases"\n[[phases]]\nname = "block"\n'
        f"repeat = {pairs}\n[[phases.phases]]\n{phase.format(n='flat', d=phase_s, i=0.0)}"
        f"[[phases.phases]]\n{phase.format(n='uphill', d=phase_s, i=1.0)}"
    )


def errors_ms(times: list[float], offsets: list[float]) -> list[float]:
    """Error of each boundary after the first against t0 + offset, in ms."""
    return [(t - (times[0] + o)) * 1e3 for t, o in zip(times[1:], offsets[1:], strict=True)]


def stats(signed_ms: list[float]) -> dict[str, float]:
    """Percentiles of the absolute error (early or late alike)."""
    ms = [abs(v) for v in signed_ms]
    ordered = sorted(ms)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(q(99), 3),
        "max_ms": round(max(ms), 3),
    }


# --- real time, through the daemon --------------------------------------------------------------


def real_time(phases: int, phase_s: float) -> dict[str, Any]:
    pairs = max(1, phases // 2)
    with workdir() as wd, mosquitto(wd) as port:
        programs = wd / "programs"
        programs.mkdir()
        (programs / "short.toml").write_text(program_text("short", pairs, phase_s))
        sim = ThreadedTreadmill()
        user = User(port)
        proc = start_daemon(DaemonSpec("timing", port, sim.path, wd, 10.0, programs))
        try:
            time.sleep(1.0)
            deadline = time.monotonic() + 60
            while True:  # until the daemon is up and the power-up interlock has passed
                with contextlib.suppress(TimeoutError):
                    if user.request("timing", "start", {"program": "short"}, 1).get("ok"):
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not start the program")
                time.sleep(0.2)
            end = time.monotonic() + pairs * 2 * phase_s + 30
            while not user.events("timing", "session_finished") and time.monotonic() < end:
                time.sleep(0.2)
            wall_minus_mono = time.time() - time.monotonic()
            events = [e for _, e in user.events("timing", "phase_started")]
            with sim.lock:
                inclines = [(t, r) for t, r in sim.requests if r.op == Op.SET_ELEVATION]
        finally:
            user.close()
            stop_process(proc)
            sim.close()
    durations = [float(e["duration_s"]) for e in events]
    offsets = [sum(durations[:k]) for k in range(len(durations))]
    stamps = [float(e["ts"]) for e in events]
    event_err = errors_ms(stamps, offsets)
    wire: list[float] = []  # arrival of each change of incline
    last: bytes | None = None
    for t, r in inclines:
        if r.field != last:
            wire.append(t)
            last = r.field
    t0 = stamps[0] - wall_minus_mono  # the first phase's start on the monotonic clock
    wire_err = [(w - (t0 + o)) * 1e3 for w, o in zip(wire[1:], offsets[1:], strict=False)]
    return {
        "events": stats(event_err),
        "wire": stats(wire_err),
        "phases": len(events),
        "signed_ms": {
            "events": [round(v, 3) for v in event_err],
            "wire": [round(v, 3) for v in wire_err],
        },
    }


# --- accelerated clock, in process ---------------------------------------------------------------


async def accelerated(minutes: int, scale: float) -> dict[str, Any]:
    sim = ThreadedTreadmill()
    settings = Settings(
        device={"id": "drift", "driver": "woodway", "port": sim.path},
        safety={"reversal_countdown_s": 0},
    )
    program = parse_program(program_text("drift", max(1, minutes // 2), 60.0), "bench")
    stamps: list[float] = []
    done = asyncio.Event()

    def listen(item: Snapshot | Event) -> None:
        if isinstance(item, Event):
            if item.type == "phase_started":
                stamps.append(time.monotonic())
            elif item.type == "session_finished":
                done.set()

    try:
        async with open_device(settings.device) as driver:
            controller = Controller(
                driver,
                profile=device_profile(settings),
                rules=safety_rules(settings),
                programs={"drift": program},
                time_scale=scale,
            )
            controller.add_listener(listen)
            task = asyncio.create_task(controller.run(), name="bench.controller")
            await controller.ready.wait()
            await asyncio.sleep(INTERLOCK_S)
            result = await controller.execute(c.Start("drift"))
            if not result.ok:
                raise RuntimeError(result.message)
            timer = asyncio.create_task(_timer_baseline(stamps, 60.0 / scale, minutes))
            async with asyncio.timeout(minutes * 60 / scale + 60):
                await done.wait()
            base = await timer
            await cancel(task)
    finally:
        sim.close()
    step = 60.0 / scale
    err = errors_ms(stamps, [k * step for k in range(len(stamps))])
    return {"controller": _drift(err, step, scale), "asyncio_call_at": _drift(base, step, scale)}


async def _timer_baseline(stamps: list[float], step: float, count: int) -> list[float]:
    """loop.call_at at the same boundaries (relative to the first phase's stamp)."""
    loop = asyncio.get_running_loop()
    t0_mono = stamps[0]
    t0_loop = loop.time() - (time.monotonic() - t0_mono)
    out: list[float] = []
    for k in range(1, count):
        fired: asyncio.Future[float] = loop.create_future()
        loop.call_at(t0_loop + k * step, _stamp, fired)
        at = await fired
        out.append((at - (t0_mono + k * step)) * 1e3)
    return out


def _stamp(future: asyncio.Future[float]) -> None:
    future.set_result(time.monotonic())


def _drift(err_ms: list[float], step: float, scale: float) -> dict[str, Any]:
    program_h = [(k + 1) * step * scale / 3600 for k in range(len(err_ms))]
    slope = statistics.linear_regression(program_h, err_ms).slope if len(err_ms) > 2 else 0.0
    n = max(1, len(err_ms) // 6)
    return {
        **stats(err_ms),
        "drift_ms_per_program_hour": round(slope, 3),
        "last_minus_first_ms": round(statistics.mean(err_ms[-n:]) - statistics.mean(err_ms[:n]), 3),
    }


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--phases", type=int, default=30)
    parser.add_argument("--phase-s", type=float, default=2.0)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logs.configure("ERROR")
    rt = real_time(args.phases, args.phase_s)
    acc = asyncio.run(accelerated(args.minutes, args.scale))
    keys = ["n", "p50_ms", "p99_ms", "max_ms"]
    print(f"phase changes against the schedule, real time ({args.phase_s:g} s phases, 10 Hz)")
    print(
        table(
            ["measured at", *keys],
            [
                ["phase_started event (daemon)", *(rt["events"][k] for k in keys)],
                ["incline command on the wire", *(rt["wire"][k] for k in keys)],
            ],
        )
    )
    print(f"\n{args.minutes}-minute program at {args.scale:g}x (errors in real ms)")
    dkeys = [*keys, "drift_ms_per_program_hour", "last_minus_first_ms"]
    print(
        table(
            ["", *dkeys],
            [
                ["controller phase_started", *(acc["controller"][k] for k in dkeys)],
                ["baseline: loop.call_at", *(acc["asyncio_call_at"][k] for k in dkeys)],
            ],
        )
    )
    met = rt["wire"]["p99_ms"] <= TARGET_MS and rt["events"]["p99_ms"] <= TARGET_MS
    drift_ok = abs(acc["controller"]["last_minus_first_ms"]) <= TARGET_MS
    print(f"targets: phase changes p99 <= {TARGET_MS:g} ms: {met}; no drift: {drift_ok}")
    out = write_json(
        args.json,
        "timing",
        {
            "real_time": rt,
            "accelerated": acc,
            "args": vars(args) | {"json": None},
            "met": met,
            "no_drift": drift_ok,
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
