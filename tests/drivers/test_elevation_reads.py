"""When the status poll reads the elevation (treadctl/drivers/elevation_reads.py): pure, on a
stepped clock, and through the Woodway driver against the simulated treadmill on a real pty."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from treadctl.drivers.elevation_reads import ElevationReads
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.pty_server import SimulatedTreadmill

POLL_S = 0.1


def polls(reads: ElevationReads, values: list[float], start: float = 0.0) -> list[bool]:
    """Whether each poll (one every POLL_S) read the elevation; `values`: what it measures."""
    out = []
    for i, value in enumerate(values):
        now = start + i * POLL_S
        due = reads.due(now)
        out.append(due)
        if due:
            reads.read(value, now)
    return out


def test_a_still_elevation_is_read_once_a_second() -> None:
    read = polls(ElevationReads(), [2.0] * 30)
    assert [i for i, r in enumerate(read) if r] == [0, 10, 20]


def test_a_change_is_followed_at_every_poll_until_it_stands_still() -> None:
    values = [2.0] * 10 + [2.5, 3.0, 3.5, 4.0] + [4.0] * 16
    read = polls(ElevationReads(), values)
    # seen at the once-a-second read (10), then every poll while it differs, and one more that
    # finds it still; then once a second again
    assert [i for i, r in enumerate(read) if r] == [0, 10, 11, 12, 13, 14, 24]


def test_a_command_that_may_move_it_is_watched_at_every_poll_for_a_while() -> None:
    reads = ElevationReads(settle_s=0.5)
    assert polls(reads, [0.0] * 3) == [True, False, False]
    reads.commanded(0.25)
    read = polls(reads, [0.0] * 20, start=0.3)
    assert [round(0.3 + i * POLL_S, 1) for i, r in enumerate(read) if r] == [
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        1.7,
    ]


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedTreadmill]:
    async with SimulatedTreadmill("woodway") as s:
        yield s


async def poll_until(driver: WoodwayDriver, sim: SimulatedTreadmill, pct: float) -> int:
    """Polls every POLL_S until the reading is `pct` (bounded); how many polls that took."""
    count = 0

    async def reached() -> bool:
        nonlocal count
        count += 1
        return (await driver.read_status()).incline_pct == pct

    async with asyncio.timeout(30):
        while not await reached():
            await asyncio.sleep(POLL_S)
    return count


async def test_the_driver_follows_a_commanded_change_at_every_poll(
    sim: SimulatedTreadmill,
) -> None:
    async with WoodwayDriver(sim.path) as driver:
        first = await driver.read_status()
        second = await driver.read_status()
        assert second.incline_pct == first.incline_pct == 0.0
        ops = sim.wire.ops()
        assert ops.count(Op.GET_ELEVATION) == 1  # the second poll, under a second later: not read
        assert ops.count(Op.GET_SPEED) == 2
        before = len(sim.wire.ops())
        await driver.set_incline(2.0)  # 1 % a second on the simulator: two seconds of motion
        count = await poll_until(driver, sim, 2.0)
        assert count >= 15
        assert sim.wire.ops()[before:].count(Op.GET_ELEVATION) == count  # every poll


async def test_a_change_made_at_the_console_is_seen_within_a_second_then_followed(
    sim: SimulatedTreadmill,
) -> None:
    async with WoodwayDriver(sim.path) as driver:
        await driver.read_status()
        sim.belt.set_incline(sim.clock(), 3.0)  # the console's own keys: no command of ours
        count = await poll_until(driver, sim, 3.0)
        ops = sim.wire.ops()
        c2_at = [i for i, op in enumerate(ops) if op == Op.GET_ELEVATION]
        gaps = [b - a for a, b in itertools.pairwise(c2_at)]
        # C0 C1 between two reads a poll apart, C0 C1 C0 C1 … when a second apart: at most
        # one still read before the motion showed, then one at every poll
        assert gaps.count(3) >= len(gaps) - 2, gaps
        assert count >= 15
