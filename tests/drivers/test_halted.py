"""Every driver keeps base.py's promise on a real pty with its simulator: after an emergency stop,
a command that would move the belt is refused (`halted`) without touching the wire, a halt that
lands while a command waits for its retry wins, and `release()` lets the belt move again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from treadctl.core.device import BeltDirection
from treadctl.drivers import csafe_codec, delta_vfd_codec, trackmaster_codec
from treadctl.drivers.base import Driver
from treadctl.drivers.csafe import CsafeDriver
from treadctl.drivers.delta_vfd import DeltaVfdDriver
from treadctl.drivers.errors import Rejected
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill, make_personality

KMH_PER_HZ = 0.2  # the simulated drive's belt


@dataclass(frozen=True)
class Case:
    personality: str
    build: Callable[[str], Driver]
    # The single request `set_speed(2.0 km/h)` puts on the wire once the belt is started.
    set_speed_2: bytes


CASES = [
    Case(
        "woodway",
        WoodwayDriver,
        trackmaster_codec.set_speed(12, reverse=False, dialect=trackmaster_codec.Dialect.WOODWAY),
    ),
    Case(
        "csafe",
        CsafeDriver,
        csafe_codec.request([csafe_codec.set_speed(20, csafe_codec.Unit.KMH_TENTHS)]),
    ),
    Case(
        "delta-vfd",
        lambda port: DeltaVfdDriver(port, kmh_per_hz=KMH_PER_HZ),
        delta_vfd_codec.write_register(1, delta_vfd_codec.REG_FREQUENCY, 1000),
    ),
]


@asynccontextmanager
async def started(case: Case) -> AsyncIterator[tuple[SimulatedTreadmill, Driver]]:
    personality = make_personality(case.personality, BeltPhysics(accel_mps2=2.0))
    async with SimulatedTreadmill(personality) as sim, case.build(sim.path) as driver:
        await driver.start()
        yield sim, driver


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.personality)
async def test_moving_commands_are_refused_while_halted_until_released(case: Case) -> None:
    async with started(case) as (sim, driver):
        await driver.emergency_stop()
        assert driver.halted
        before = bytes(sim.wire.rx)
        with pytest.raises(Rejected) as speed:
            await driver.set_speed(2.0, BeltDirection.FORWARD)
        assert speed.value.code == "halted"
        with pytest.raises(Rejected) as start:
            await driver.start()
        assert start.value.code == "halted"
        await asyncio.sleep(0.05)
        assert bytes(sim.wire.rx) == before  # refused before the wire
        driver.release()
        await driver.start()
        commanded = await driver.set_speed(2.0, BeltDirection.FORWARD)
        assert commanded == pytest.approx(2.0, abs=0.1)  # 1.2 mph on the Woodway
        assert case.set_speed_2 in bytes(sim.wire.rx)[len(before) :]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.personality)
async def test_a_halt_during_a_retry_wins(case: Case) -> None:
    async with started(case) as (sim, driver):
        sim.faults.silent = True  # the set-point goes unanswered: the driver will retry it
        command = asyncio.create_task(driver.set_speed(2.0, BeltDirection.FORWARD))
        async with asyncio.timeout(2):
            while case.set_speed_2 not in bytes(sim.wire.rx):
                await sim.wait_rx()
        driver.stop_now()  # lands while the first try waits for its answer
        with pytest.raises(Rejected) as refused:
            await command
        assert refused.value.code == "halted"
        assert bytes(sim.wire.rx).count(case.set_speed_2) == 1  # not tried again
