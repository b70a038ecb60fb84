"""A CSAFE console that refuses a set-point, on a real pty with the simulated console.

The console tells how it took a frame only in the next reply's "previous frame status", so the
driver follows each set-point frame with GetStatus in the same locked exchange: the call that
sent the set-point raises. Through the controller, a refused speed is an e-stop at once (before,
it was only logged and the belt ran on at the old speed until the speed-mismatch rule fired).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from control.rig import Rig, driver_rig, with_rules
from treadctl.config.models import DeviceConfig
from treadctl.core import commands as c
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile
from treadctl.devices import capabilities_of
from treadctl.drivers.csafe import CsafeDriver, check_taken
from treadctl.drivers.csafe_codec import Cmd, FrameStatus, Request
from treadctl.drivers.errors import CodecError, Rejected
from treadctl.sim.csafe import CsafePersonality
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill

GET_STATUS = bytes.fromhex("F1 80 80 F2")
STOP = bytes.fromhex("F1 25 03 00 00 31 82 95 F2")
SPEED_2_1 = bytes.fromhex("F1 25 03 15 00 31 02 F2")  # SetSpeed 2.1 km/h
GRADE_5 = bytes.fromhex("F1 28 03 32 00 4C 55 F2")  # SetGrade 5.0 %


def small_console() -> CsafePersonality:
    """A console that takes at most 2.0 km/h and 2 % (the driver allows 20 km/h and 15 %)."""
    return CsafePersonality(BeltPhysics(accel_mps2=2.0), speed_max_kmh=2.0, grade_max_pct=2.0)


@asynccontextmanager
async def driver_on(
    console: CsafePersonality,
) -> AsyncIterator[tuple[SimulatedTreadmill, CsafeDriver]]:
    async with (
        SimulatedTreadmill(console) as sim,
        CsafeDriver(sim.path, poll_interval_s=0.1) as driver,
    ):
        yield sim, driver


def followed_by_get_status(sim: SimulatedTreadmill, frame: bytes) -> bool:
    return frame + GET_STATUS in bytes(sim.wire.rx)


async def test_a_refused_speed_raises_in_the_call_that_sent_it() -> None:
    async with driver_on(small_console()) as (sim, driver):
        await driver.start()
        assert await driver.set_speed(2.0, BeltDirection.FORWARD) == pytest.approx(2.0)
        with pytest.raises(Rejected, match="refused f1 25 03 15 00 31 02 f2") as refused:
            await driver.set_speed(2.1, BeltDirection.FORWARD)
        assert refused.value.code == "refused"
        assert followed_by_get_status(sim, SPEED_2_1)
        assert sim.belt.set_speed_kmh == pytest.approx(2.0)  # the console kept the old speed
        # The refusal belongs to that call only: the next set-point and poll are fine.
        assert await driver.set_speed(1.0, BeltDirection.FORWARD) == pytest.approx(1.0)
        await driver.read_status()


async def test_a_refused_grade_raises_in_the_call_that_sent_it() -> None:
    async with driver_on(small_console()) as (sim, driver):
        await driver.start()
        assert await driver.set_incline(1.5) == pytest.approx(1.5)
        with pytest.raises(Rejected, match="status reject"):
            await driver.set_incline(5.0)
        assert followed_by_get_status(sim, GRADE_5)
        assert sim.belt.set_incline_pct == pytest.approx(1.5)


async def test_a_start_the_console_refuses_still_says_why() -> None:
    async with driver_on(small_console()) as (sim, driver):
        sim.pull_key()
        with pytest.raises(Rejected, match="safety key"):
            await driver.start()


def test_how_each_previous_frame_status_is_read() -> None:
    frame = bytes.fromhex("F1 25 03 15 00 31 02 F2")
    check_taken("csafe", frame, FrameStatus.OK)
    with pytest.raises(Rejected) as refused:
        check_taken("csafe", frame, FrameStatus.REJECT)
    assert refused.value.code == "refused"
    with pytest.raises(Rejected) as not_ready:
        check_taken("csafe", frame, FrameStatus.NOT_READY)
    assert not_ready.value.code == "not_ready"
    # Damaged on the line is not a refusal: the controller sends its set-point again.
    with pytest.raises(CodecError, match="damaged"):
        check_taken("csafe", frame, FrameStatus.BAD)


# --- through the controller ---------------------------------------------------------------------

RULES = with_rules(speed_resolution_kmh=0.1)
PROFILE = DeviceProfile(
    "csafe",
    capabilities_of(DeviceConfig(driver="csafe", port="unused")),
    retro_mode="face-away",
    countdown_s=1.0,
)


@asynccontextmanager
async def controlled(console: CsafePersonality) -> AsyncIterator[Rig]:
    def make_driver(port: str) -> CsafeDriver:
        return CsafeDriver(port, poll_interval_s=0.1)

    async with driver_rig(console, make_driver, PROFILE, RULES) as r:
        yield r


def set_speeds(r: Rig) -> list[int]:
    return [
        int.from_bytes(cmd.data[:2], "little")
        for item in r.sim.wire.requests
        if isinstance(item.request, Request)
        for cmd in item.request.commands
        if cmd.cmd == Cmd.SET_SPEED
    ]


async def test_a_refused_speed_is_an_estop_at_once_with_the_stop_frame_next() -> None:
    async with controlled(small_console()) as r:
        assert (await r.run(c.ManualSet(3.0, WalkDirection.FORWARD))).ok
        await r.until(lambda: SPEED_2_1 in bytes(r.sim.wire.rx), 10, "the refused set-point")
        refused_at = time.monotonic()
        await r.mode(Mode.ESTOP, 1)
        assert time.monotonic() - refused_at < 0.5  # not the mismatch rule's 3 s grace
        assert (await r.estop_cause()) == "failure"
        estop = next(e for e in r.events if e.type == "estop")
        assert "treadmill refused a speed command" in str(estop.details["detail"])
        # On the wire: the refused set-point, the status poll that learned it, then the stop.
        rx = bytes(r.sim.wire.rx)
        refused = rx.index(SPEED_2_1)
        assert rx[refused + len(SPEED_2_1) :].startswith(GET_STATUS)
        assert STOP in rx[refused:]
        assert max(set_speeds(r)) == 21  # nothing faster was tried after the refusal
        await r.until(lambda: r.sim.belt.still, 5, "the belt still")


async def test_a_refused_incline_is_a_warning_and_the_belt_runs_on() -> None:
    async with controlled(small_console()) as r:
        assert (await r.run(c.ManualSet(1.0, WalkDirection.FORWARD, incline_pct=5.0))).ok
        await r.until(lambda: GRADE_5 in bytes(r.sim.wire.rx), 10, "the refused grade")
        rx = bytes(r.sim.wire.rx)
        assert rx[rx.index(GRADE_5) + len(GRADE_5) :].startswith(GET_STATUS)
        await r.until(lambda: r.sim.belt.speed_kmh > 0.8, 10, "the belt at speed")
        assert r.controller.mode is Mode.RUNNING
        assert "estop" not in r.event_types()
        assert bytes(r.sim.wire.rx).count(GRADE_5) == 1  # refused once, not sent every tick
