"""E-stop latency: controller.emergency_stop() call -> stop byte read on the treadmill's pty.

Run: uv run python bench/estop_latency.py [--trials N] [--json FILE]

A controller drives the simulated Woodway (a real pty) through a running manual session with
its 10 Hz polling; at random moments the e-stop is called and the time until the simulator's
side of the pty reads the A2 byte is taken. The simulator reads the pty in a thread of its own
(blocking os.read, timestamped on arrival), so the figure is not held up by the event loop.
The baseline, in the same run, is the least any asyncio program can do: os.write of the stop
byte to the same pty from the event loop, read the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import threading
import time
import tty
from pathlib import Path

from treadctl import logs
from treadctl.control.controller import Controller
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Dialect
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.trackmaster import TrackmasterPersonality

STOP = 0xA2


class ThreadedTreadmill:
    """The Woodway personality on a pty, served by a thread that timestamps every stop byte."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.belt = BeltPhysics(accel_mps2=2.0)
        self.protocol = TrackmasterPersonality(Dialect.WOODWAY, self.belt)
        self.stops: list[float] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="bench.treadmill")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            now = time.perf_counter()
            with self.lock:
                if STOP in data:
                    self.stops.append(now)
                answer = self.protocol.feed(data, time.monotonic())
            if answer:
                os.write(self.master, answer)

    def wait_stop(self, after: int, timeout: float = 2.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if len(self.stops) > after:
                    return self.stops[after]
            time.sleep(0.0002)
        raise TimeoutError("no stop byte")

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1e3 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


async def measure_controller(trials: int) -> list[float]:
    sim = ThreadedTreadmill()
    caps = WoodwayDriver.capabilities
    rules = SafetyRules(
        speed_resolution_kmh=caps.speed_resolution_kmh, max_accel_mps2=0.15, estop_interlock_s=0.0
    )
    latencies: list[float] = []
    async with WoodwayDriver(sim.path, poll_interval_s=0.1) as driver:
        controller = Controller(
            driver, profile=DeviceProfile("woodway", caps), rules=rules, programs={}
        )
        task = asyncio.create_task(controller.run(), name="bench.controller")
        await controller.ready.wait()
        for _ in range(trials):
            result = await controller.execute(c.ManualSet(1.0, WalkDirection.FORWARD))
            if not result.ok:
                raise RuntimeError(result.message)
            await asyncio.sleep(random.uniform(0.3, 0.8))
            with sim.lock:
                before = len(sim.stops)
            t0 = time.perf_counter()
            await controller.emergency_stop()
            latencies.append(await asyncio.to_thread(sim.wait_stop, before) - t0)
            with sim.lock:
                sim.belt.speed_kmh = 0.0  # skip the coast-down: the next trial starts at once
            await asyncio.sleep(0.25)
            await controller.execute(c.Reset())
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    sim.close()
    return latencies


async def measure_baseline(trials: int) -> list[float]:
    sim = ThreadedTreadmill()
    fd = os.open(sim.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    latencies = []
    for _ in range(trials):
        await asyncio.sleep(random.uniform(0.01, 0.05))
        with sim.lock:
            before = len(sim.stops)
        t0 = time.perf_counter()
        os.write(fd, bytes([STOP]))
        latencies.append(await asyncio.to_thread(sim.wait_stop, before) - t0)
    os.close(fd)
    sim.close()
    return latencies


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logs.configure("ERROR")
    baseline = summary(await measure_baseline(args.trials))
    controller = summary(await measure_controller(args.trials))
    print(f"e-stop latency, call -> stop byte on the pty ({args.trials} trials each)")
    print(f"{'path':34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in (
        ("baseline: os.write to the pty", baseline),
        ("treadctl controller.emergency_stop", controller),
    ):
        print(f"{name:34} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}")
    ratio = {k: round(controller[k] / baseline[k], 2) for k in ("p50_ms", "p99_ms") if baseline[k]}
    print(f"ratio to baseline: p50 {ratio.get('p50_ms')}x, p99 {ratio.get('p99_ms')}x")
    if args.json:
        args.json.write_text(
            json.dumps({"baseline": baseline, "controller": controller, "ratio": ratio}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
