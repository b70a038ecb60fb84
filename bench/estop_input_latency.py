"""E-stop input latency: a STOP line written by the button box -> stop byte on the treadmill's pty.

Run: uv run python bench/estop_input_latency.py [--trials N] [--json FILE]

Two real ptys: a button box (a thread sending heartbeats every 0.1 s, as the reference firmware
does) and the simulated Woodway (bench/benchkit.py's ThreadedTreadmill, served by a thread that
timestamps every stop byte as it reads it, so the figure is not held up by the event loop being
measured). treadctl's path is the daemon's: HeartbeatInput's reader callback ->
Controller.estop_input -> emergency_stop_now -> driver.stop_now, while the controller runs a
manual session with its 10 Hz polling. The baseline, in the same run, is the least an asyncio
reader can do: add_reader on the box's pty, os.read, and os.write of the stop byte straight to
the treadmill's pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import threading
import time
from collections.abc import Callable

from benchkit import (
    Pty,
    ThreadedTreadmill,
    bench_controller,
    cancel,
    in_process_estop_bench,
)

from treadctl.config.models import EStopInputConfig
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op
from treadctl.estop.inputs import HeartbeatInput
from treadctl.estop.protocol import heartbeat_line, stop_line


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
        t0 = time.monotonic()
        self._send(stop_line)
        return t0

    def close(self) -> None:
        self._done.set()
        super().close()


def press_and_wait(box: ThreadedBox, treadmill: ThreadedTreadmill) -> float:
    before = treadmill.stop_count()
    t0 = box.press()
    return treadmill.wait_stop(before) - t0


async def measure_treadctl(trials: int) -> list[float]:
    treadmill, box = ThreadedTreadmill(), ThreadedBox()
    latencies: list[float] = []
    async with WoodwayDriver(treadmill.path, poll_interval_s=0.1) as driver:
        controller = bench_controller(driver)
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
            treadmill.skip_coast_down()
            await asyncio.sleep(0.15)
        await cancel(*tasks)
    box.close()
    treadmill.close()
    return latencies


async def measure_baseline(trials: int) -> list[float]:
    treadmill, box = ThreadedTreadmill(), ThreadedBox()
    out = os.open(treadmill.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    inp = os.open(box.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def readable() -> None:
        if b"STOP" in os.read(inp, 256):
            os.write(out, bytes([Op.STOP]))

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
    return await in_process_estop_bench(
        __doc__,
        title="e-stop input latency, STOP line written -> stop byte read ({trials} trials each)",
        width=40,
        baseline=("baseline: add_reader + os.write", measure_baseline),
        measured=("treadctl", "treadctl: HeartbeatInput -> controller", measure_treadctl),
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
