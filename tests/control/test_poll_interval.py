"""Rule 8, the poll that feeds the treadmill's watchdog: the controller reads the treadmill once
per tick, its tick is `device.poll_interval_s`, and nothing else polls. Measured on the
simulated treadmill's side of a real pty (the time each status request arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from waiting import until

from control.rig import CAPS, FAST
from treadctl.config import load_settings
from treadctl.control.controller import Controller
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.timeline import DeviceProfile
from treadctl.daemon import Daemon
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op, Request
from treadctl.sim.pty_server import SimulatedTreadmill

PROFILE = DeviceProfile("woodway", CAPS, countdown_s=FAST.reversal_countdown_s)
POLLS = 10  # intervals measured per case
TOLERANCE = 0.15  # of the interval, for the median on a shared 2-core machine


def polls(sim: SimulatedTreadmill, since: float) -> list[float]:
    """When each status read (C0, the first request of every poll) reached the treadmill."""
    return [
        r.at
        for r in sim.wire.requests
        if r.at >= since and isinstance(r.request, Request) and r.request.op == Op.GET_STATE
    ]


async def poll_intervals(sim: SimulatedTreadmill, n: int = POLLS) -> list[float]:
    since = time.monotonic()
    await until(
        lambda: len(polls(sim, since)) > n,
        timeout=n * 1.0 + 5,
        what=f"{n + 1} polls on the wire",
        step=0.02,
    )
    times = polls(sim, since)[: n + 1]
    return [b - a for a, b in itertools.pairwise(times)]


def assert_period(intervals: list[float], period: float) -> None:
    median = statistics.median(intervals)
    print(
        f"poll every {period} s: median {median * 1000:.1f} ms, max {max(intervals) * 1000:.1f} ms",
        file=sys.stderr,
    )
    assert median == pytest.approx(period, rel=TOLERANCE)


@contextlib.asynccontextmanager
async def controlled(tick_s: float) -> AsyncIterator[tuple[SimulatedTreadmill, Controller]]:
    """The controller at `tick_s` on the Woodway driver, the simulated treadmill on a pty."""
    async with (
        SimulatedTreadmill("woodway") as sim,
        WoodwayDriver(sim.path, poll_interval_s=tick_s) as driver,
    ):
        controller = Controller(driver, profile=PROFILE, rules=FAST, programs={}, tick_s=tick_s)
        task = asyncio.create_task(controller.run(), name="test.controller")
        try:
            await asyncio.wait_for(controller.ready.wait(), 5)
            yield sim, controller
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.parametrize("tick_s", [0.05, 0.25])
async def test_the_controller_polls_the_treadmill_once_per_tick(tick_s: float) -> None:
    async with controlled(tick_s) as (sim, _):
        assert_period(await poll_intervals(sim), tick_s)


async def test_at_the_longest_allowed_interval_the_watchdog_stays_fed() -> None:
    longest = CAPS.max_poll_interval_s  # 0.25 s against the treadmill's 0.5 s watchdog
    async with controlled(longest) as (sim, controller):
        await asyncio.sleep(FAST.estop_interlock_s + 0.05)  # the power-up interlock is time
        assert (await controller.execute(c.ManualSet(1.0, WalkDirection.FORWARD))).ok
        await until(lambda: sim.belt.speed_kmh > 0.8, timeout=10, what="belt at speed", step=0.02)
        since = time.monotonic()
        assert_period(await poll_intervals(sim, 8), longest)  # two seconds at speed
        assert sim.belt.running
        assert sim.belt.watchdog_armed
        assert sim.belt.stop_cause is None  # the watchdog never fired
        arrivals = [r.at for r in sim.wire.requests if r.at >= since]
        assert max(b - a for a, b in itertools.pairwise(arrivals)) < 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_daemon_polls_at_device_poll_interval_s(tmp_path: Path) -> None:
    """From the configuration file to the wire. 0.2 s, not the 0.1 s default: a daemon that
    ignored the key would poll at its default. (No broker: the bridge keeps reconnecting.)"""
    async with SimulatedTreadmill("woodway") as sim:
        config = tmp_path / "treadctl.toml"
        config.write_text(
            f'[device]\ndriver = "woodway"\nport = "{sim.path}"\npoll_interval_s = 0.2\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        )
        daemon = Daemon(load_settings(config))
        task = asyncio.create_task(daemon.run(), name="test.daemon")
        try:
            await until(
                lambda: daemon.controller is not None, timeout=5, what="the controller", step=0.02
            )
            assert daemon.controller is not None
            await asyncio.wait_for(daemon.controller.ready.wait(), 5)
            assert daemon.controller.tick_s == 0.2
            assert_period(await poll_intervals(sim), 0.2)
        finally:
            daemon.stop.set()
            assert await asyncio.wait_for(task, 20) == 0
