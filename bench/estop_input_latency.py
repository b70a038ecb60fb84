"""E-stop input latency: a STOP line written by the button box -> stop byte on the treadmill's pty.

Run: uv run python bench/estop_input_latency.py [--trials N] [--json FILE]

Two real ptys: a button box (a thread sending heartbeats every 0.1 s, as the reference firmware
does) and the simulated Woodway (served by a thread that timestamps every stop byte as it
reads it, so the figure is not held up by the event loop being measured). treadctl's path is
the daemon's: HeartbeatInput's reader callback -> Controller.estop_input -> emergency_stop_now
-> driver.stop_now, while the controller runs a manual session with its 10 Hz polling. The
baseline, in the same run, is the least an asyncio reader can do: add_reader on the box's pty,
os.read, and os.write of the stop byte straight to the treadmill's pty.
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
from collections.abc import Callable
from pathlib import Path

from treadctl import logs
from treadctl.config.models import EStopInputConfig
from treadctl.control.controller import Controller
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Dialect
from treadctl.estop.inputs import HeartbeatInput
from treadctl.estop.protocol import heartbeat_line, stop_line
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.trackmaster import TrackmasterPersonality

STOP = 0xA2


class Pty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


class ThreadedTreadmill(Pty):
    """The Woodway personality on a pty, served by a thread that timestamps every stop byte."""

    def __init__(self) -> None:
        super().__init__()
        self.belt = BeltPhysics(accel_mps2=2.0)
        self.protocol = TrackmasterPersonality(Dialect.WOODWAY, self.belt)
        self.stops: list[float] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True, name="bench.treadmill").start()

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

    def count(self) -> int:
        with self.lock:
            return len(self.stops)

    def wait_stop(self, after: int, timeout: float = 2.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if len(self.stops) > after:
                    return self.stops[after]
            time.sleep(0.0001)
        raise TimeoutError("no stop byte")


class ThreadedBox(Pty):
    """The button box: heartbeats from a thread; `press()` writes a STOP line and returns when."""

    def __init__(self, period_s: float = 0.1) -> None:
        super().__init__()
        self.period_s = period_s
        self.pressed = False
        self.seq = 0
        self.lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._beat, daemon=True, name="bench.box").start()

    def _send(self, line: Callable[[int], bytes]) -> None:
        with self.lock:
            self.seq += 1
            os.write(self.master, line(self.seq))

    def _beat(self) -> None:
        while not self._done.wait(self.period_s):
            with contextlib.suppress(OSError):
                self._send(lambda seq: heartbeat_line(seq, self.pressed))

    def press(self) -> float:
        self.pressed = True
        t0 = time.perf_counter()
        self._send(stop_line)
        return t0

    def close(self) -> None:
        self._done.set()
        super().close()


def press_and_wait(box: ThreadedBox, treadmill: ThreadedTreadmill) -> float:
    before = treadmill.count()
    t0 = box.press()
    return treadmill.wait_stop(before) - t0


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


async def measure_treadctl(trials: int) -> list[float]:
    treadmill, box = ThreadedTreadmill(), ThreadedBox()
    caps = WoodwayDriver.capabilities
    rules = SafetyRules(
        speed_resolution_kmh=caps.speed_resolution_kmh, max_accel_mps2=0.15, estop_interlock_s=0.0
    )
    latencies: list[float] = []
    async with WoodwayDriver(treadmill.path, poll_interval_s=0.1) as driver:
        controller = Controller(
            driver, profile=DeviceProfile("woodway", caps), rules=rules, programs={}
        )
        config = EStopInputConfig(name="box", kind="heartbeat", port=box.path, healthy_after=2)
        item = HeartbeatInput(config, lambda h, trip: controller.estop_input(h, trip=trip))
        controller.estop_input(item.health(), trip=False)
        tasks = [
            asyncio.create_task(controller.run(), name="bench.controller"),
            asyncio.create_task(item.run(), name="bench.estop_input"),
        ]
        await controller.ready.wait()
        for _ in range(trials):
            while not item.health().healthy:  # noqa: ASYNC110 - health is a plain value
                await asyncio.sleep(0.01)
            await controller.execute(c.Reset())  # refused the first time: nothing latched
            result = await controller.execute(c.ManualSet(1.0, WalkDirection.FORWARD))
            if not result.ok:
                raise RuntimeError(result.message)
            await asyncio.sleep(random.uniform(0.2, 0.5))
            latencies.append(await asyncio.to_thread(press_and_wait, box, treadmill))
            box.pressed = False
            with treadmill.lock:
                treadmill.belt.speed_kmh = 0.0  # skip the coast-down: the next trial starts at once
            await asyncio.sleep(0.15)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    box.close()
    treadmill.close()
    return latencies


async def measure_baseline(trials: int) -> list[float]:
    treadmill, box = ThreadedTreadmill(), ThreadedBox()
    out = os.open(treadmill.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    inp = os.open(box.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def readable() -> None:
        if b"STOP" in os.read(inp, 256):
            os.write(out, bytes([STOP]))

    loop = asyncio.get_running_loop()
    loop.add_reader(inp, readable)
    latencies = []
    for _ in range(trials):
        await asyncio.sleep(random.uniform(0.02, 0.1))
        latencies.append(await asyncio.to_thread(press_and_wait, box, treadmill))
    loop.remove_reader(inp)
    os.close(inp)
    os.close(out)
    box.close()
    treadmill.close()
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
    treadctl = summary(await measure_treadctl(args.trials))
    print(f"e-stop input latency, STOP line written -> stop byte read ({args.trials} trials each)")
    print(f"{'path':40} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in (
        ("baseline: add_reader + os.write", baseline),
        ("treadctl: HeartbeatInput -> controller", treadctl),
    ):
        print(f"{name:40} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}")
    ratio = {k: round(treadctl[k] / baseline[k], 2) for k in ("p50_ms", "p99_ms") if baseline[k]}
    print(f"ratio to baseline: p50 {ratio.get('p50_ms')}x, p99 {ratio.get('p99_ms')}x")
    if args.json:
        args.json.write_text(
            json.dumps({"baseline": baseline, "treadctl": treadctl, "ratio": ratio}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
