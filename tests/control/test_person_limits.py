"""A person's limits on the wire: the simulated treadmill over a real pty never receives a speed
beyond the person's tighter cap, a start beyond it moves nothing, and the limits end with the
session (docs/mqtt.md, People)."""

from __future__ import annotations

import time

from control.rig import FAST, rig, with_rules
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.person import PersonLimits
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op

BACK = WalkDirection.BACKWARD
SLOW = PersonLimits(max_speed_backward_kmh=1.5)


async def test_a_persons_tighter_cap_holds_on_the_wire_for_their_session_only() -> None:
    async with rig(FAST) as r:
        res = await r.run(c.ManualSet(2.0, BACK, person="mrs-k", limits=SLOW))
        assert (res.ok, res.code) == (False, "limit_exceeded")
        assert "max_speed_backward_kmh = 1.5" in res.message
        await r.ticks(3)
        assert Op.START_WATCHDOG not in r.sim.wire.rx  # nothing moved
        assert r.controller.mode is Mode.IDLE

        assert (await r.run(c.ManualSet(1.5, BACK, person="mrs-k", limits=SLOW))).ok
        await r.until(lambda: r.sim.belt.speed_kmh <= -1.4, 10, "at the person's speed")
        assert r.snapshots[-1].state_dict()["person"] == "mrs-k"
        # Within the session: a faster target is refused, even with looser limits sent along.
        res = await r.run(c.ManualSet(1.8, BACK))
        assert (res.ok, res.code) == (False, "limit_exceeded")
        looser = PersonLimits(max_speed_backward_kmh=2.5)
        res = await r.run(c.ManualSet(1.8, BACK, limits=looser))
        assert (res.ok, res.code) == (False, "limit_exceeded")
        res = await r.run(c.ManualSet(1.0, BACK, person="someone-else"))
        assert (res.ok, res.code) == (False, "not_allowed_in_mode")
        await r.ticks(5)
        assert min(w.kmh for w in r.wire_speeds()) >= -1.5  # reverse is negative
        assert (await r.run(c.Stop())).ok
        await r.mode(Mode.IDLE)
        finished = r.finished()
        assert finished["person"] == "mrs-k"

        # The next session without a person runs on the device's own cap (3.0 km/h backward).
        assert (await r.run(c.ManualSet(2.5, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh <= -2.3, 15, "faster than the person's cap")
        assert r.snapshots[-1].state_dict()["person"] is None


async def test_a_program_beyond_the_persons_cap_is_refused_and_moves_nothing() -> None:
    async with rig(FAST, time_scale=10) as r:  # the program's 30 s ramp in 3 s
        start = c.Start("chang2021-stroke", {"comfortable_backward_kmh": 2.0}, "p-1", SLOW)
        res = await r.run(start)
        assert (res.ok, res.code) == (False, "limit_exceeded")
        assert "max_speed_backward_kmh = 1.5" in res.message
        await r.ticks(3)
        assert Op.START_WATCHDOG not in r.sim.wire.rx
        fits = c.Start("chang2021-stroke", {"comfortable_backward_kmh": 1.5}, "p-1", SLOW)
        assert (await r.run(fits)).ok
        await r.until(lambda: r.sim.belt.speed_kmh <= -1.4, 15, "walking backward at speed")
        assert min(w.kmh for w in r.wire_speeds()) >= -1.5


async def test_a_persons_heart_rate_maximum_stops_the_belt() -> None:
    async with rig(with_rules(heart_rate_max_bpm=160)) as r:
        limits = PersonLimits(heart_rate_max_bpm=120)
        assert (await r.run(c.HeartRate(100))).ok
        assert (await r.run(c.ManualSet(1.0, BACK, person="p-2", limits=limits))).ok
        await r.until(lambda: r.sim.belt.speed_kmh <= -0.5, 10, "moving")
        t0 = time.monotonic()
        assert (await r.run(c.HeartRate(125))).ok  # under the device's 160, over the person's
        assert (await r.estop_cause()) == "heart_rate"
        await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte on the wire")
        await r.until(lambda: r.sim.belt.still, 5, "belt still")


async def test_a_persons_heart_rate_maximum_needs_a_signal_to_start() -> None:
    """No device maximum, but the person has one: the start needs a heart-rate signal too."""
    async with rig(FAST) as r:
        limits = PersonLimits(heart_rate_max_bpm=120)
        res = await r.run(c.ManualSet(1.0, BACK, person="p-3", limits=limits))
        assert (res.ok, res.code) == (False, "no_heart_rate")
        await r.ticks(3)
        assert Op.START_WATCHDOG not in r.sim.wire.rx
        assert (await r.run(c.HeartRate(100))).ok
        assert (await r.run(c.ManualSet(1.0, BACK, person="p-3", limits=limits))).ok
