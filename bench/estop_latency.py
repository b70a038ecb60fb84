"""E-stop latency: controller.emergency_stop() call -> stop byte read on the treadmill's pty.

Run: uv run python bench/estop_latency.py [--trials N] [--json FILE]

A controller drives the simulated Woodway (a real pty) through a running manual session with
its 10 Hz polling; at random moments the e-stop is called and the time until the simulator's
side of the pty reads the A2 byte is taken. The simulator reads the pty in a thread of its own
(bench/benchkit.py's ThreadedTreadmill: blocking os.read, timestamped on arrival), so the figure
is not held up by the event loop.
The baseline, in the same run, is the least any asyncio program can do: os.write of the stop
byte to the same pty from the event loop, read the same way.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time

from benchkit import (
    ThreadedTreadmill,
    bench_controller,
    cancel,
    in_process_estop_bench,
)

from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op


async def measure_controller(trials: int) -> list[float]:
    sim = ThreadedTreadmill()
    latencies: list[float] = []
    async with WoodwayDriver(sim.path, poll_interval_s=0.1) as driver:
        controller = bench_controller(driver)
        task = asyncio.create_task(controller.run(), name="bench.controller")
        await controller.ready.wait()
        for _ in range(trials):
            result = await controller.execute(c.ManualSet(1.0, WalkDirection.FORWARD))
            if not result.ok:
                raise RuntimeError(result.message)
            await asyncio.sleep(random.uniform(0.3, 0.8))
            before = sim.stop_count()
            t0 = time.monotonic()
            await controller.emergency_stop()
            latencies.append(await asyncio.to_thread(sim.wait_stop, before) - t0)
            sim.skip_coast_down()
            await asyncio.sleep(0.25)
            await controller.execute(c.Reset())
        await cancel(task)
    sim.close()
    return latencies


async def measure_baseline(trials: int) -> list[float]:
    sim = ThreadedTreadmill()
    fd = os.open(sim.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    latencies = []
    for _ in range(trials):
        await asyncio.sleep(random.uniform(0.01, 0.05))
        before = sim.stop_count()
        t0 = time.monotonic()
        os.write(fd, bytes([Op.STOP]))
        latencies.append(await asyncio.to_thread(sim.wait_stop, before) - t0)
    os.close(fd)
    sim.close()
    return latencies


async def main() -> int:
    return await in_process_estop_bench(
        __doc__,
        title="e-stop latency, call -> stop byte on the pty ({trials} trials each)",
        width=34,
        baseline=("baseline: os.write to the pty", measure_baseline),
        measured=("controller", "treadctl controller.emergency_stop", measure_controller),
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
