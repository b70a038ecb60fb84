"""The treadmill's minimum speed: no speed between 0 and it reaches the wire.

On a real pty with the simulated Woodway made to answer BE below its minimum (so a slower
command would be a refused speed, an e-stop), driven by a controller whose rules come from the
configuration exactly as the daemon builds them.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from control.rig import Rig, driver_rig
from treadctl.config import ConfigError, load_settings
from treadctl.config.models import DEFAULT_MIN_SPEED_KMH, DeviceConfig, Settings
from treadctl.core import commands as c
from treadctl.core import units
from treadctl.core.device import WalkDirection
from treadctl.core.state import Mode
from treadctl.devices import build_driver, capabilities_of, device_profile, safety_rules
from treadctl.drivers.base import Driver
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver
from treadctl.drivers.trackmaster_codec import Dialect, Op, Request, decode_speed_field
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.trackmaster import TrackmasterPersonality

FWD, BACK = WalkDirection.FORWARD, WalkDirection.BACKWARD


def settings(**device: object) -> Settings:
    return Settings(device=DeviceConfig(driver="woodway", port="unused", **device))


@asynccontextmanager
async def woodway(config: Settings, min_tenths: int) -> AsyncIterator[Rig]:
    # The daemon's rules and profile from the configuration; only the waits are shortened.
    rules = dataclasses.replace(
        safety_rules(config), estop_interlock_s=0.2, reversal_countdown_s=1.0
    )
    profile = dataclasses.replace(device_profile(config), countdown_s=1.0)

    def make_driver(port: str) -> Driver:
        return WoodwayDriver(port, poll_interval_s=0.1, min_speed_kmh=config.device.min_speed_kmh)

    console = TrackmasterPersonality(Dialect.WOODWAY, BeltPhysics(), speed_min_tenths=min_tenths)
    async with driver_rig(console, make_driver, profile, rules) as r:
        yield r


def wire_tenths(r: Rig) -> list[tuple[float, int]]:
    """Every speed command on the wire: (time, signed tenths of a mph)."""
    out = []
    for item in r.sim.wire.requests:
        if isinstance(item.request, Request) and item.request.op == Op.SET_SPEED:
            tenths, reverse = decode_speed_field(item.request.field, Dialect.WOODWAY)
            out.append((item.at, -tenths if reverse else tenths))
    return out


def started_between(r: Rig, t1: float, t2: float) -> bool:
    return any(
        isinstance(x.request, Request) and x.request.op == Op.START_WATCHDOG and t1 <= x.at <= t2
        for x in r.sim.wire.requests
    )


def check_the_wire(r: Rig, min_tenths: int) -> None:
    sent = wire_tenths(r)
    speeds = [abs(v) for _, v in sent]
    assert speeds.count(min_tenths) >= 2, speeds  # it went through the minimum both ways
    assert all(v == 0 or v >= min_tenths for v in speeds), speeds
    rules = r.controller.supervisor.rules
    for (t1, v1), (t2, v2) in itertools.pairwise(sent):
        if v1 == 0 and v2 != 0:
            assert abs(v2) == min_tenths, sent  # from 0: straight to the minimum
        if v1 != 0 and v2 == 0:
            assert abs(v1) == min_tenths, sent  # to 0: from the minimum
        if started_between(r, t1, t2):
            continue  # the belt's start: its ramp began before the start frames (rule 2 holds)
        # Within the ramp, 0 <-> minimum included (10 ms of pty jitter).
        step_kmh = units.tenths_mph_to_kmh(abs(v2 - v1))
        assert step_kmh <= rules.accel_kmh_s * (t2 - t1 + 0.01) + 1e-9, (t1, v1, t2, v2)
    assert "estop" not in r.event_types()  # the treadmill never answered BE


async def test_the_default_minimum_0_2_mph_through_a_reversal_and_a_stop() -> None:
    config = settings()
    assert safety_rules(config).speed_min_kmh == pytest.approx(units.tenths_mph_to_kmh(2))
    async with woodway(config, 2) as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 0.9, 15, "forward at speed")
        assert (await r.run(c.ManualSet(1.0, BACK))).ok  # down to 0, still, countdown, up
        await r.until(lambda: r.sim.belt.speed_kmh < -0.9, 20, "reverse at speed")
        assert (await r.run(c.Stop())).ok
        await r.mode(Mode.IDLE, 15)
        check_the_wire(r, 2)
        assert next(v for _, v in wire_tenths(r) if v) == 2
        assert min(v for _, v in wire_tenths(r)) <= -2  # the reverse leg ran


async def test_a_configured_minimum_rounded_up_to_a_wire_step() -> None:
    config = settings(min_speed_kmh=0.45)  # 0.28 mph: 0.3 mph on the wire
    assert capabilities_of(config.device).speed_min_kmh == pytest.approx(units.tenths_mph_to_kmh(3))
    async with woodway(config, 3) as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 0.9, 15, "at speed")
        assert (await r.run(c.Stop())).ok
        await r.mode(Mode.IDLE, 15)
        check_the_wire(r, 3)


async def test_a_treadmill_refusing_slower_speeds_is_an_estop_without_the_minimum() -> None:
    # What the minimum prevents: the same treadmill, its driver told (wrongly) that it takes
    # 0.1 mph, so rules and controller ramp through it (the controller raises the rules' minimum
    # to the driver's, never lowers it).
    config = settings()
    rules = dataclasses.replace(safety_rules(config), speed_min_kmh=0.0, estop_interlock_s=0.2)

    def make_driver(port: str) -> Driver:
        return WoodwayDriver(port, poll_interval_s=0.1, min_speed_kmh=units.tenths_mph_to_kmh(1))

    console = TrackmasterPersonality(Dialect.WOODWAY, BeltPhysics(), speed_min_tenths=2)
    async with driver_rig(console, make_driver, device_profile(config), rules) as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.mode(Mode.ESTOP, 5)
        assert (await r.estop_cause()) == "failure"  # "treadmill refused a speed command"
        assert next(v for _, v in wire_tenths(r) if v) == 1


# --- configuration ------------------------------------------------------------------------------


def test_each_drivers_minimum_in_the_configuration_is_its_capability() -> None:
    devices = [
        DeviceConfig(driver="sim"),
        DeviceConfig(driver="trackmaster", port="x"),
        DeviceConfig(driver="woodway", port="x"),
        DeviceConfig(driver="csafe", port="x"),
        DeviceConfig.model_validate({"driver": "csafe", "port": "x", "csafe": {"units": "mph"}}),
        DeviceConfig.model_validate(
            {"driver": "delta-vfd", "port": "x", "vfd": {"kmh_per_hz": 0.2}}
        ),
        DeviceConfig(driver="woodway", port="x", min_speed_kmh=0.1),
        DeviceConfig(driver="csafe", port="x", min_speed_kmh=0.33),
    ]
    assert set(DEFAULT_MIN_SPEED_KMH) == {d.driver for d in devices}
    for device in devices:
        caps = capabilities_of(device)
        assert device.speed_step_kmh == pytest.approx(caps.speed_resolution_kmh), device
        assert device.effective_min_speed_kmh == pytest.approx(caps.speed_min_kmh), device
        if device.driver != "sim":
            assert build_driver(device).capabilities == caps, device
    assert TrackmasterDriver.capabilities.speed_min_kmh == pytest.approx(
        DEFAULT_MIN_SPEED_KMH["trackmaster"]
    )
    assert capabilities_of(devices[-2]).speed_min_kmh == pytest.approx(
        units.tenths_mph_to_kmh(1)
    )  # a Trackmaster known to take 0.1 mph
    assert capabilities_of(devices[-1]).speed_min_kmh == pytest.approx(0.4)  # whole 0.1 km/h


def _load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "treadctl.toml"
    path.write_text(text)
    return load_settings(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (  # the default 0.2 mph (0.32 km/h) above a start speed of 0.3 km/h
            '[device]\ndriver = "woodway"\nport = "x"\n[limits]\nstart_speed_kmh = 0.3\n',
            (
                r"device\.min_speed_kmh: .*0\.322 km/h \(the woodway driver's default.*"
                r"limits\.start_speed_kmh = 0\.3"
            ),
        ),
        (  # 0.49 km/h is 0.4 mph on the wire (0.64 km/h), above the 0.5 km/h start speed
            '[device]\ndriver = "trackmaster"\nport = "x"\nmin_speed_kmh = 0.49\n',
            r"device\.min_speed_kmh: .*0\.644 km/h \(device\.min_speed_kmh = 0\.49",
        ),
        ("[device]\nmin_speed_kmh = 0.6\n", r"device\.min_speed_kmh"),  # above the ceiling
        ("[device]\nmin_speed_kmh = 0\n", r"device\.min_speed_kmh"),
    ],
)
def test_a_minimum_above_the_start_speed_is_refused_naming_both_keys(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def test_a_lower_start_speed_works_with_a_lower_minimum(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        '[device]\ndriver = "woodway"\nport = "x"\nmin_speed_kmh = 0.16\n'
        "[limits]\nstart_speed_kmh = 0.3\n",
    )
    assert safety_rules(config).speed_min_kmh == pytest.approx(units.tenths_mph_to_kmh(1))
    csafe = _load(
        tmp_path, '[device]\ndriver = "csafe"\nport = "x"\n[limits]\nstart_speed_kmh = 0.1\n'
    )
    assert safety_rules(csafe).speed_min_kmh == pytest.approx(0.1)  # one 0.1 km/h step
