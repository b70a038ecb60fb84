"""C0 state bytes the manuals do not name, on a real pty with the simulated Woodway.

Such a byte is "not known to be running": harmless while idle, and a belt treadctl started that
reports it is a treadmill stop (an e-stop). device.trackmaster.belt_states gives it a meaning.
Before, any byte but 31/32/33 was a broken answer, and three polls in a row a lost link.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from control.rig import CAPS, FAST, Rig, driver_rig
from treadctl.config import ConfigError, load_settings
from treadctl.config.models import DeviceConfig
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile
from treadctl.devices import build_driver
from treadctl.drivers.base import Driver
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver
from treadctl.drivers.trackmaster_codec import BeltState, Dialect, Op
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill
from treadctl.sim.trackmaster import TrackmasterPersonality

UNNAMED = 0x34
EVERY_STATE_UNNAMED: dict[int, int] = dict.fromkeys(BeltState, UNNAMED)
RUNNING_UNNAMED: dict[int, int] = {BeltState.RUNNING_WATCHDOG: UNNAMED, BeltState.RUNNING: UNNAMED}


def woodway_console(sim: SimulatedTreadmill) -> TrackmasterPersonality:
    assert isinstance(sim.protocol, TrackmasterPersonality)
    return sim.protocol


async def test_an_idle_treadmill_reporting_an_unnamed_state_is_usable() -> None:
    async with (
        SimulatedTreadmill("woodway") as sim,
        WoodwayDriver(sim.path, poll_interval_s=0.1) as driver,
    ):
        woodway_console(sim).state_bytes = EVERY_STATE_UNNAMED
        for _ in range(6):  # twice the misses that were a lost link
            status = await driver.read_status()
            assert (status.running, status.safety_stop, status.watchdog_armed) == (
                False,
                False,
                False,
            )
        assert sim.wire.tx.count(bytes([0xD0, UNNAMED])) == 6


async def test_a_started_belt_reporting_an_unnamed_state_is_a_safety_stop() -> None:
    async with (
        SimulatedTreadmill("woodway") as sim,
        WoodwayDriver(sim.path, poll_interval_s=0.1) as driver,
    ):
        await driver.start()
        assert (await driver.read_status()).running
        woodway_console(sim).state_bytes = RUNNING_UNNAMED
        status = await driver.read_status()
        assert (status.running, status.safety_stop) == (False, True)


async def test_a_configured_byte_means_what_the_configuration_says() -> None:
    async with (
        SimulatedTreadmill("woodway") as sim,
        WoodwayDriver(sim.path, poll_interval_s=0.1, belt_states={UNNAMED: True}) as driver,
    ):
        woodway_console(sim).state_bytes = RUNNING_UNNAMED
        await driver.start()
        status = await driver.read_status()
        assert (status.running, status.safety_stop) == (True, False)
        assert bytes([0xD0, UNNAMED]) in sim.wire.tx


@pytest.mark.parametrize("byte", [0x31, 0x32, 0x33, 0x41, 0xB3])
def test_only_unnamed_digits_can_be_given_a_meaning(byte: int) -> None:
    with pytest.raises(ValueError, match="ASCII digit"):
        TrackmasterDriver("/dev/null", belt_states={byte: True})


def _device(tmp_path: Path, states: str) -> DeviceConfig:
    path = tmp_path / "treadctl.toml"
    path.write_text(
        f'[device]\ndriver = "woodway"\nport = "/dev/ttyUSB0"\n'
        f"[device.trackmaster]\nbelt_states = {states}\n"
    )
    return load_settings(path).device


def test_the_configuration_key_reaches_the_driver(tmp_path: Path) -> None:
    device = _device(tmp_path, '{ "34" = "running", "30" = "stopped" }')
    assert device.trackmaster.running_by_byte == {0x34: True, 0x30: False}
    driver = build_driver(device)
    assert isinstance(driver, WoodwayDriver)
    assert driver.belt_states == {0x34: True, 0x30: False}


@pytest.mark.parametrize(
    "states", ['{ "31" = "running" }', '{ "3A" = "running" }', '{ "x" = "stopped" }']
)
def test_the_configuration_refuses_documented_or_non_digit_bytes(
    tmp_path: Path, states: str
) -> None:
    with pytest.raises(ConfigError, match=r"device\.trackmaster\.belt_states.*30 to 39"):
        _device(tmp_path, states)


def test_the_configuration_refuses_other_meanings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"device\.trackmaster\.belt_states\.34"):
        _device(tmp_path, '{ "34" = "moving" }')


# --- through the controller ---------------------------------------------------------------------

PROFILE = DeviceProfile("woodway", CAPS, max_accel_mps2=0.15, countdown_s=FAST.reversal_countdown_s)


@asynccontextmanager
async def woodway(belt_states: Mapping[int, bool] | None = None) -> AsyncIterator[Rig]:
    def make_driver(port: str) -> Driver:
        return WoodwayDriver(port, poll_interval_s=0.1, belt_states=belt_states)

    personality = TrackmasterPersonality(Dialect.WOODWAY, BeltPhysics())
    async with driver_rig(personality, make_driver, PROFILE, FAST) as r:
        yield r


async def test_the_daemon_stays_idle_on_an_unnamed_state_and_e_stops_a_started_belt() -> None:
    async with woodway() as r:
        woodway_console(r.sim).state_bytes = EVERY_STATE_UNNAMED
        await r.until(lambda: r.sim.wire.tx.count(bytes([0xD0, UNNAMED])) >= 6, 3, "six polls")
        assert (r.controller.mode, r.controller.link_ok) == (Mode.IDLE, True)

        woodway_console(r.sim).state_bytes = {}
        assert (await r.run(c.ManualSet(1.5, WalkDirection.FORWARD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 0.5, 10, "the belt moving")
        t0 = time.monotonic()
        woodway_console(r.sim).state_bytes = RUNNING_UNNAMED  # the belt runs on, says "34"
        await r.mode(Mode.ESTOP, 2)
        assert (await r.estop_cause()) == "treadmill_stop"
        await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte on the wire")
        await r.until(lambda: r.sim.belt.still, 5, "the belt still")
        assert r.controller.link_ok


async def test_the_daemon_runs_a_treadmill_whose_running_state_is_configured() -> None:
    async with woodway({UNNAMED: True}) as r:
        woodway_console(r.sim).state_bytes = RUNNING_UNNAMED
        assert (await r.run(c.ManualSet(1.5, WalkDirection.FORWARD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "the belt moving")
        await r.until(lambda: r.sim.wire.tx.count(bytes([0xD0, UNNAMED])) >= 10, 3, "ten polls")
        assert r.controller.mode is Mode.RUNNING
        # The stops it reports with a documented byte are still seen.
        r.sim.pull_key()
        await r.mode(Mode.ESTOP, 2)
        assert (await r.estop_cause()) == "treadmill_stop"
