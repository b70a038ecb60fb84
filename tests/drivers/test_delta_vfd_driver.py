"""The delta-vfd driver's direction flip against the simulated drive over a real pty: the
direction bits change only once the drive itself reports 0 Hz, and a drive that does not get
there in time keeps its direction and says why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from treadctl.core.device import BeltDirection
from treadctl.drivers import delta_vfd_codec as codec
from treadctl.drivers.delta_vfd import FLIP_WAIT_S, DeltaVfdDriver
from treadctl.drivers.delta_vfd_codec import Access
from treadctl.drivers.errors import Rejected
from treadctl.sim.delta_vfd import DeltaVfdPersonality
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill

FWD, REV = BeltDirection.FORWARD, BeltDirection.REVERSE
KMH_PER_HZ = 0.2  # the simulated belt: 4 km/h at 20 Hz


@asynccontextmanager
async def at_speed() -> AsyncIterator[tuple[SimulatedTreadmill, DeltaVfdDriver]]:
    """The belt running forward at 4 km/h (20 Hz)."""
    personality = DeltaVfdPersonality(BeltPhysics(accel_mps2=2.0), kmh_per_hz=KMH_PER_HZ)
    async with (
        SimulatedTreadmill(personality) as sim,
        DeltaVfdDriver(sim.path, kmh_per_hz=KMH_PER_HZ) as driver,
    ):
        await driver.start()
        await driver.set_speed(4.0, FWD)
        deadline = time.monotonic() + 10
        while (await driver.read_status()).speed_kmh < 4.0 - 1e-6:
            assert time.monotonic() < deadline, "the belt never reached 4 km/h"
            await asyncio.sleep(0.05)
        yield sim, driver


def accesses(sim: SimulatedTreadmill) -> list[tuple[float, Access]]:
    return [(x.at, x.request) for x in sim.wire.requests if isinstance(x.request, Access)]


def written(access: Access, address: int, value: int) -> bool:
    return access.address == address and access.values == (value,)


async def test_the_flip_waits_for_the_drive_to_report_0_hz() -> None:
    async with at_speed() as (sim, driver):
        since = len(accesses(sim))
        asked = time.monotonic()
        assert await driver.set_speed(1.0, REV) == pytest.approx(1.0)
        log = accesses(sim)[since:]
        zero = next(i for i, (_, a) in enumerate(log) if written(a, codec.REG_FREQUENCY, 0))
        flip = next(
            i for i, (_, a) in enumerate(log) if written(a, codec.REG_COMMAND, codec.RUN_REVERSE)
        )
        reads = [a for _, a in log[zero:flip] if a.values is None]
        assert len(reads) >= 2  # read until the drive reported 0 Hz, not once on trust
        # 4 km/h at 2 m/s² is ~0.55 s of ramp: the flip went on the wire after it, not before.
        assert log[flip][0] - asked >= 0.5
        assert sim.belt.speed_kmh <= 0  # never turned round at speed


async def test_a_drive_still_turning_after_the_wait_keeps_its_direction() -> None:
    async with at_speed() as (sim, driver):
        sim.belt.accel_mps2 = 0.1  # a long deceleration time: ~11 s to stop from 4 km/h
        since = len(accesses(sim))
        asked = time.monotonic()
        with pytest.raises(Rejected, match="still turns") as refused:
            await driver.set_speed(1.0, REV)
        assert refused.value.code == "not_stopped"
        assert FLIP_WAIT_S <= time.monotonic() - asked < FLIP_WAIT_S + 1.0
        log = [a for _, a in accesses(sim)[since:]]
        assert not any(written(a, codec.REG_COMMAND, codec.RUN_REVERSE) for a in log)
        assert sim.belt.speed_kmh > 0  # still forward, slowing down
