"""Belt physics on a fake clock: every time is an argument."""

from __future__ import annotations

import pytest

from treadctl.core import units
from treadctl.sim.physics import BeltPhysics, StopCause


def started_belt(at: float, speed_kmh: float) -> BeltPhysics:
    """A belt started at `at` (its watchdog not armed) and told to go `speed_kmh`."""
    belt = BeltPhysics()
    belt.advance(at)
    belt.start(at, watchdog=False)
    belt.set_speed(at, speed_kmh)
    return belt


def test_speed_follows_set_speed_at_bounded_acceleration() -> None:
    belt = BeltPhysics(accel_mps2=0.5)
    belt.advance(0.0)
    belt.received(0.0)
    assert belt.start(0.0, watchdog=False)
    assert belt.set_speed(0.0, 3.6)  # 1 m/s
    belt.advance(1.0)
    assert belt.speed_kmh == pytest.approx(units.accel_kmh_per_s(0.5))  # 0.5 m/s after 1 s
    belt.advance(2.0)
    assert belt.speed_kmh == pytest.approx(3.6)
    belt.advance(10.0)
    assert belt.speed_kmh == pytest.approx(3.6)  # never overshoots


def test_direction_change_refused_unless_still() -> None:
    belt = started_belt(0.0, 2.0)
    belt.advance(1.0)
    assert not belt.set_speed(1.0, -2.0)
    assert belt.set_speed_kmh == 2.0
    belt.set_speed(1.0, 0.0)
    belt.advance(5.0)
    assert belt.still
    assert belt.set_speed(5.0, -2.0)
    belt.advance(10.0)
    assert belt.speed_kmh == pytest.approx(-2.0)


def test_watchdog_stops_the_belt_half_a_second_after_the_last_byte() -> None:
    belt = BeltPhysics(watchdog_s=0.5)
    belt.advance(0.0)
    belt.received(0.0)
    belt.start(0.0, watchdog=True)
    belt.set_speed(0.0, 2.0)
    belt.advance(0.4)
    belt.received(0.4)
    belt.advance(0.85)
    assert belt.running  # fed at 0.4
    belt.advance(0.95)
    assert not belt.running
    assert belt.stop_cause is StopCause.WATCHDOG
    belt.advance(10.0)
    assert belt.still


def test_watchdog_not_armed_by_a_start_without_it() -> None:
    belt = BeltPhysics()
    belt.advance(0.0)
    belt.start(0.0, watchdog=False)
    belt.advance(5.0)
    assert belt.running


def test_safety_key_stops_the_belt_and_blocks_starts() -> None:
    belt = started_belt(0.0, 2.0)
    belt.advance(3.0)
    belt.pull_key(3.0)
    assert belt.stop_cause is StopCause.SAFETY_KEY
    assert not belt.start(3.1, watchdog=False)
    belt.insert_key(4.0)
    assert belt.start(4.0, watchdog=False)


def test_time_going_backwards_changes_nothing() -> None:
    belt = started_belt(10.0, 2.0)
    belt.advance(5.0)
    assert belt.speed_kmh == 0.0
