"""Trackmaster and Woodway drivers against the simulated treadmill over a real pty."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import NoReturn

import pytest
from waiting import until

from treadctl.core import units
from treadctl.core.device import BeltDirection
from treadctl.drivers.errors import CodecError, LinkLost, Rejected, TimedOut
from treadctl.drivers.session import MAX_MISSES, RESPONSE_TIMEOUT_S
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.physics import BeltPhysics, StopCause
from treadctl.sim.pty_server import SimulatedTreadmill

TWO_MPH_KMH = units.mph_to_kmh(2.0)


async def poll(driver: TrackmasterDriver, every: float = 0.1) -> NoReturn:
    """The owner's poll, as the controller's tick does it: the driver runs none of its own."""
    while True:
        # One bad answer is survivable; max_misses in a row raise LinkLost.
        with contextlib.suppress(TimedOut, CodecError):
            await driver.read_status()
        await asyncio.sleep(every)


@pytest.fixture
async def woodway_sim() -> AsyncIterator[SimulatedTreadmill]:
    async with SimulatedTreadmill("woodway", belt=BeltPhysics(accel_mps2=2.0)) as sim:
        yield sim


@pytest.fixture
async def trackmaster_sim() -> AsyncIterator[SimulatedTreadmill]:
    async with SimulatedTreadmill("trackmaster", belt=BeltPhysics(accel_mps2=2.0)) as sim:
        yield sim


@pytest.fixture
async def woodway(woodway_sim: SimulatedTreadmill) -> AsyncIterator[WoodwayDriver]:
    async with WoodwayDriver(woodway_sim.path) as driver:
        yield driver


@pytest.fixture
async def trackmaster(trackmaster_sim: SimulatedTreadmill) -> AsyncIterator[TrackmasterDriver]:
    async with TrackmasterDriver(trackmaster_sim.path) as driver:
        yield driver


async def test_open_commands_the_belt_to_stop(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    assert woodway_sim.wire.rx[:1] == bytes([Op.STOP])
    assert woodway_sim.wire.tx[:1] == b"\xb2"


async def test_woodway_reverse_ramp_readback_and_stop(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    async with asyncio.TaskGroup() as tg:
        poller = tg.create_task(poll(woodway), name="test.poll")
        await woodway.start()
        commanded = await woodway.set_speed(TWO_MPH_KMH, BeltDirection.REVERSE)
        assert commanded == pytest.approx(TWO_MPH_KMH)
        assert bytes.fromhex("a3 33 30 32 30") in woodway_sim.wire.rx  # reverse 2.0 mph
        seen: list[float] = []

        async def reached() -> None:
            while True:
                status = await woodway.read_status()
                seen.append(status.speed_kmh)
                if status.speed_kmh >= TWO_MPH_KMH - 1e-6:
                    assert status.belt is BeltDirection.REVERSE
                    assert status.running
                    assert status.watchdog_armed
                    return
                await asyncio.sleep(0.05)

        async with asyncio.timeout(3):
            await reached()
        assert seen[0] < TWO_MPH_KMH  # it ramped: the belt did not jump to speed
        assert woodway_sim.belt.speed_kmh == pytest.approx(-TWO_MPH_KMH)
        await woodway.stop()
        await until(lambda: woodway_sim.belt.still, timeout=3.0, step=0.02)
        status = await woodway.read_status()
        assert not status.running
        assert status.speed_kmh == 0
        assert not status.safety_stop  # we stopped it
        assert bytes([Op.AUTO_STOP]) in woodway_sim.wire.rx
        poller.cancel()


async def test_watchdog_stops_the_belt_when_the_driver_goes_silent(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    await woodway.start()
    await woodway.set_speed(TWO_MPH_KMH, BeltDirection.REVERSE)
    silent_since = time.monotonic()
    # No poll: nothing is sent from now on, as if treadctl had been killed.
    await until(lambda: woodway_sim.belt.stop_cause is StopCause.WATCHDOG, timeout=2, step=0.02)
    assert time.monotonic() - silent_since >= 0.5
    await until(lambda: woodway_sim.belt.still, timeout=3.0, step=0.02)
    status = await woodway.read_status()
    assert not status.running
    assert status.safety_stop  # the driver sees the treadmill stopped the belt by itself


async def test_a_poll_at_the_longest_allowed_interval_keeps_the_watchdog_fed(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    longest = woodway.capabilities.max_poll_interval_s
    await woodway.start()
    await woodway.set_speed(1.0, BeltDirection.FORWARD)
    async with asyncio.TaskGroup() as tg:
        poller = tg.create_task(poll(woodway, every=longest), name="test.poll")
        await asyncio.sleep(1.5)  # observed for three watchdog periods
        assert woodway_sim.belt.running
        assert woodway_sim.belt.stop_cause is None
        gaps = [
            b.at - a.at
            for a, b in zip(woodway_sim.wire.requests, woodway_sim.wire.requests[1:], strict=False)
        ]
        assert max(gaps) < 0.5
        poller.cancel()


async def test_pulled_key_is_reported_and_blocks_starts(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    await woodway.start()
    await woodway.set_speed(2.0, BeltDirection.FORWARD)
    woodway_sim.pull_key()
    status = await woodway.read_status()
    assert not status.running
    assert status.safety_stop
    assert woodway_sim.belt.stop_cause is StopCause.SAFETY_KEY
    with pytest.raises(Rejected) as info:
        await woodway.start()
    assert info.value.code == "out_of_range"
    woodway_sim.insert_key()
    await woodway.start()
    assert (await woodway.read_status()).running


async def test_unplug_raises_link_lost_within_a_second(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    await woodway.start()
    poller = asyncio.create_task(poll(woodway), name="test.poll")
    await asyncio.sleep(0.3)
    woodway_sim.unplug()
    unplugged = time.monotonic()
    with pytest.raises(LinkLost):
        async with asyncio.timeout(1.0):
            await poller
    assert time.monotonic() - unplugged < 1.0
    with pytest.raises(LinkLost):
        await woodway.read_status()


async def test_silent_treadmill_becomes_link_lost(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    woodway_sim.faults.silent = True
    started = time.monotonic()
    with pytest.raises(LinkLost, match="no valid answer"):
        async with asyncio.timeout(2.0):
            await poll(woodway)
    assert time.monotonic() - started < 1.5


async def test_noise_on_the_line_is_survived(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    woodway_sim.send_garbage(bytes.fromhex("d1 ff 00 37 b3 41"))
    await asyncio.sleep(0.05)
    status = await woodway.read_status()  # stale noise discarded, real answer parsed
    assert not status.running
    woodway_sim.faults.garbage_answers = True
    with pytest.raises((LinkLost, TimedOut, Exception)):
        await woodway.read_status()
    woodway_sim.faults.garbage_answers = False
    assert not (await woodway.read_status()).running


async def test_late_answers_time_out_then_recover(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    woodway_sim.faults.late_s = 0.6  # the driver waits 0.25 s, twice
    with pytest.raises(TimedOut):
        await woodway.set_speed(1.0, BeltDirection.FORWARD)
    woodway_sim.faults.late_s = 0.0
    await asyncio.sleep(0.8)  # the late answers arrive and become stale
    assert await woodway.set_speed(1.0, BeltDirection.FORWARD) == pytest.approx(
        units.tenths_mph_to_kmh(6)
    )


async def test_a_late_answer_taken_for_the_retrys_does_not_reset_the_miss_count(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    woodway_sim.faults.late_s = 0.3  # past the 0.25 s timeout, within the retry's wait
    # Answered by the first try's late answer (the same bytes as the retry's own).
    assert await woodway.set_speed(1.0, BeltDirection.FORWARD) > 0
    woodway_sim.faults.late_s = 0.0
    woodway_sim.faults.silent = True
    # That first miss still counts: the retry's own answer, arriving during the poll, is a
    # wrong answer (2), the poll's retry goes unanswered (3 = max_misses).
    with pytest.raises(LinkLost, match="no valid answer to 3 requests"):
        await woodway.read_status()


@pytest.mark.parametrize("late_s", [0.3, 0.4, 0.6])
async def test_answers_all_late_are_a_lost_link_after_the_nominal_misses(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill, late_s: float
) -> None:
    """A late answer arrives during the next request and looks like its answer; it must not
    reset the miss count (before, it did, and the link took up to 5 s to be lost)."""
    woodway_sim.faults.late_s = late_s
    # At most one owed answer per miss between the misses, each exchange one timeout at most,
    # then the poll's pause; 0.3 s for a loaded machine.
    bound = (2 * MAX_MISSES - 1) * (RESPONSE_TIMEOUT_S + 0.1) + 0.3
    started = time.monotonic()
    with pytest.raises(LinkLost, match="no valid answer"):
        async with asyncio.timeout(bound):
            await poll(woodway)
    assert time.monotonic() - started < bound


async def test_emergency_stop_overtakes_a_command_in_flight(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    await woodway.start()
    await woodway.set_speed(2.0, BeltDirection.FORWARD)
    woodway_sim.faults.late_s = 0.15
    poll = asyncio.create_task(woodway.read_status(), name="test.poll")
    await woodway_sim.wait_rx()  # C0 is on the wire, its answer not yet back
    await woodway.emergency_stop()
    await poll
    ops = woodway_sim.wire.ops()
    first_stop = len(ops) - 1 - ops[::-1].index(Op.GET_STATE)
    # A2 reached the treadmill right after C0, before the poll's C1 and C2.
    assert ops[first_stop + 1] == Op.STOP
    assert not woodway_sim.belt.running


async def test_trackmaster_refuses_reverse_without_touching_the_wire(
    trackmaster: TrackmasterDriver, trackmaster_sim: SimulatedTreadmill
) -> None:
    before = bytes(trackmaster_sim.wire.rx)
    with pytest.raises(Rejected) as info:
        await trackmaster.set_speed(2.0, BeltDirection.REVERSE)
    assert info.value.code == "unsupported"
    assert bytes(trackmaster_sim.wire.rx) == before


async def test_trackmaster_forward_and_incline_rounding(
    trackmaster: TrackmasterDriver, trackmaster_sim: SimulatedTreadmill
) -> None:
    await trackmaster.start()
    assert await trackmaster.set_speed(TWO_MPH_KMH, BeltDirection.FORWARD) == pytest.approx(
        TWO_MPH_KMH
    )
    assert bytes.fromhex("a0") in trackmaster_sim.wire.rx
    assert bytes.fromhex("a3 30 30 32 30") in trackmaster_sim.wire.rx
    assert await trackmaster.set_incline(4.3) == 4.0  # rounded down to the 0.5 % step
    assert bytes.fromhex("a4 30 30 34 30") in trackmaster_sim.wire.rx
    with pytest.raises(Rejected):
        await trackmaster.set_incline(30)
    await until(
        lambda: trackmaster_sim.belt.speed_kmh == pytest.approx(TWO_MPH_KMH), timeout=3.0, step=0.02
    )
    status = await trackmaster.read_status()
    assert status.speed_kmh == pytest.approx(TWO_MPH_KMH)
    assert status.belt is BeltDirection.FORWARD


async def test_direction_change_at_speed_is_refused_by_the_treadmill(
    woodway: WoodwayDriver, woodway_sim: SimulatedTreadmill
) -> None:
    await woodway.start()
    await woodway.set_speed(2.0, BeltDirection.FORWARD)
    await until(lambda: woodway_sim.belt.speed_kmh > 0.5, timeout=3.0, step=0.02)
    with pytest.raises(Rejected, match="BE"):
        await woodway.set_speed(2.0, BeltDirection.REVERSE)
    assert woodway_sim.belt.speed_kmh > 0


def test_poll_interval_must_keep_the_watchdog_fed() -> None:
    with pytest.raises(ValueError, match="watchdog"):
        TrackmasterDriver("/dev/null", poll_interval_s=0.4)
