"""Every safety rule of docs/safety.md made to happen on the simulated treadmill over a real pty.

Each test checks what the treadmill received (bytes) and did (belt speed over time).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from control.rig import CAPS, DEFAULT, rig, with_rules
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.safety import HR_LOST_SLOW_KMH
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.physics import BeltPhysics, StopCause

FWD, BACK = WalkDirection.FORWARD, WalkDirection.BACKWARD
STEP = CAPS.speed_resolution_kmh
STATUS_OPS = {Op.GET_STATE, Op.GET_SPEED, Op.GET_ELEVATION, Op.GET_SET_SPEED, Op.GET_SET_ELEVATION}


# --- rule 1: stop on start-up, never resume ------------------------------------------------------


async def test_rule1_startup_stops_a_moving_belt_and_never_resumes() -> None:
    belt = BeltPhysics()
    belt.advance(time.monotonic())
    belt.received(time.monotonic())
    belt.start(time.monotonic(), watchdog=False)  # left running by a crashed predecessor
    belt.set_speed(time.monotonic(), -2.0)
    belt.speed_kmh = -2.0  # at speed
    async with rig(belt=belt) as r:
        assert r.sim.wire.rx[0] == Op.STOP  # the first byte treadctl ever sends
        await r.until(lambda: r.sim.belt.still, 3, "belt still")
        await r.ticks(5)  # five more readings of the still belt
        assert Op.START_WATCHDOG not in r.sim.wire.rx  # nothing started it again
        assert r.controller.mode is Mode.IDLE
        assert r.controller.session is None


# --- rule 2: caps per walk direction, start speed ------------------------------------------------


async def test_rule2_speed_and_incline_caps_refuse_and_change_nothing() -> None:
    async with rig() as r:
        res = await r.run(c.ManualSet(3.5, BACK))
        assert (res.ok, res.code) == (False, "out_of_range")
        assert "limits.max_speed_backward_kmh" in res.message
        res = await r.run(c.ManualSet(2.0, BACK, incline_pct=12.0))
        assert (res.ok, res.code) == (False, "out_of_range")
        res = await r.run(c.Start("chang2021-stroke", {"comfortable_backward_kmh": 3.0}))
        assert res.ok  # 1.0 x 3.0 km/h: at the cap, allowed
        await r.run(c.EmergencyStop())
        await r.until(lambda: r.sim.belt.still)
        await r.run(c.Reset())
        await r.interlock_over()
        res = await r.run(c.Start("backward-intervals", {"comfortable_backward_kmh": 3.5}))
        assert (res.ok, res.code) == (False, "program_invalid")
        assert "comfortable_backward_kmh = 3.5" in res.message
        assert max(abs(w.kmh) for w in r.wire_speeds()) <= 3.0


async def test_rule2_the_belt_starts_at_or_below_the_start_speed() -> None:
    async with rig(DEFAULT, wait_interlock=True) as r:
        assert (await r.run(c.ManualSet(2.0, FWD))).ok
        await r.until(lambda: any(w.kmh > 0 for w in r.wire_speeds()), 5)
        first = next(w for w in r.wire_speeds() if w.kmh > 0)
        assert 0 < first.kmh <= DEFAULT.start_speed_kmh


# --- rule 3: every speed change ramped at <= max_accel -------------------------------------------


def assert_ramped(speeds: list[tuple[float, float]], accel_kmh_s: float, start_kmh: float) -> None:
    for (t1, v1), (t2, v2) in itertools.pairwise(speeds):
        if v1 == 0 and v2 != 0:
            assert abs(v2) <= start_kmh + 1e-9  # a start: at most the start speed
            continue
        # 10 ms of slack for pty delivery jitter between the two commands
        assert abs(v2 - v1) <= accel_kmh_s * (t2 - t1 + 0.01) + 1e-9, (t1, v1, t2, v2)


async def test_rule3_speed_commands_never_step_beyond_the_ramp() -> None:
    async with rig(DEFAULT) as r:
        assert (await r.run(c.ManualSet(2.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh >= 2.4, 10, "at speed")
        assert (await r.run(c.ManualSet(1.0, FWD))).ok  # a big step down, asked for at once
        await r.until(lambda: abs(r.sim.belt.speed_kmh - 0.97) < 0.05, 10, "slowed")
        assert (await r.run(c.Stop())).ok
        await r.mode(Mode.IDLE, 10)
        speeds = [(w.at, w.kmh) for w in r.wire_speeds()]
        assert len(speeds) > 20  # it really ramped in many small commands
        assert_ramped(speeds, DEFAULT.accel_kmh_s, DEFAULT.start_speed_kmh)
        # and the belt itself followed without a jump
        for (t1, v1), (t2, v2) in zip(r.trace, r.trace[1:], strict=False):
            assert abs(v2 - v1) <= DEFAULT.accel_kmh_s * (t2 - t1) + STEP


# --- rule 4: reversal only after 2 s measured still, then a countdown ----------------------------


async def test_rule4_a_reversal_at_speed_waits_for_two_seconds_still_and_a_countdown() -> None:
    rules = with_rules(reversal_countdown_s=1.0)
    async with rig(rules) as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.4, 5, "forward at speed")
        asked = time.monotonic()
        assert (await r.run(c.ManualSet(1.5, BACK))).ok  # reverse, now, at speed
        await r.until(lambda: r.sim.belt.speed_kmh < -0.1, 15, "reverse")
        still_at = next(t for t, v in r.trace if t > asked and v == 0)
        first_reverse = next(w for w in r.wire_speeds() if w.kmh < 0)
        assert (
            first_reverse.at - still_at
            >= rules.reversal_standstill_s + rules.reversal_countdown_s - 0.15
        )
        assert "reversal_deferred" in r.event_types()
        assert "countdown" in r.event_types()
        # never a reverse command while the belt moved forward
        for w in r.wire_speeds():
            if w.kmh < 0:
                moving = [v for t, v in r.trace if abs(t - w.at) < 0.05]
                assert all(v <= 0 for v in moving)


# --- rule 5: latched e-stop, from every source ---------------------------------------------------


async def test_rule5_estop_during_a_ramp_is_on_the_wire_before_the_next_speed_command() -> None:
    async with rig(DEFAULT) as r:
        assert (await r.run(c.ManualSet(2.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.5, 10, "ramping")
        t0 = time.monotonic()
        await r.controller.emergency_stop()
        after = r.ops_since(t0)
        # the stop came first: only a status poll written just before the call may precede it
        first = after.index(Op.STOP)
        assert first <= 1
        assert all(op in STATUS_OPS for op in after[:first])
        await r.until(lambda: r.sim.belt.still, 3)
        assert all(w.kmh == 0 for w in r.wire_speeds() if w.at >= t0)
        assert r.controller.mode is Mode.ESTOP
        res = await r.run(c.Start("chang2021-stroke"))
        assert (res.ok, res.code) == (False, "estop_latched")
        assert "estop" in r.event_types()
        assert r.events[-1].type == "session_finished"
        assert r.events[-1].details["ended"] == "estop"


async def test_rule5_reset_only_while_the_belt_is_still() -> None:
    async with rig() as r:
        assert (await r.run(c.ManualSet(2.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 2.0, 10)
        await r.controller.emergency_stop()
        res = await r.run(c.Reset())  # the belt still coasts
        assert (res.ok, res.code) == (False, "belt_moving")
        await r.until(lambda: r.sim.belt.still, 3)
        assert (await r.run(c.Reset())).ok  # judged on a fresh reading of the belt
        assert r.controller.mode is Mode.IDLE


async def test_rule5_pulled_key_latches_estop() -> None:
    async with rig() as r:
        assert (await r.run(c.ManualSet(2.0, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.0, 10)
        r.sim.pull_key()
        await r.mode(Mode.ESTOP, 2)
        assert r.sim.belt.stop_cause is StopCause.SAFETY_KEY
        assert (await r.estop_cause()) == "treadmill_stop"
        res = await r.run(c.ManualSet(1.0, FWD))
        assert res.code == "estop_latched"


async def test_rule5_speed_mismatch_latches_estop() -> None:
    async with rig(with_rules(speed_mismatch_kmh=0.5, speed_mismatch_grace_s=1.0)) as r:
        r.sim.belt.slip_limit_kmh = 1.0  # the belt cannot go faster than 1 km/h
        t0 = time.monotonic()
        assert (await r.run(c.ManualSet(2.5, FWD))).ok
        await r.mode(Mode.ESTOP, 10)
        assert (await r.estop_cause()) == "speed_mismatch"
        await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte on the wire")
        await r.until(lambda: r.sim.belt.still, 3)


async def test_rule5_heart_rate_above_the_maximum_latches_estop() -> None:
    async with rig(with_rules(heart_rate_max_bpm=140)) as r:
        assert (await r.run(c.HeartRate(120))).ok
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 5)
        t0 = time.monotonic()
        assert (await r.run(c.HeartRate(150))).ok
        await r.mode(Mode.ESTOP, 2)
        await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte on the wire")
        assert (await r.estop_cause()) == "heart_rate"


async def test_rule5_deadman_timeout_latches_estop() -> None:
    async with rig(with_rules(deadman_s=1.0)) as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        for _ in range(4):
            await asyncio.sleep(0.5)
            assert (await r.run(c.Heartbeat())).ok
        assert r.controller.mode is Mode.RUNNING  # kept alive by heartbeats
        await r.mode(Mode.ESTOP, 3)
        assert (await r.estop_cause()) == "deadman"


async def test_rule5_an_unexpected_failure_elsewhere_stops_the_belt() -> None:
    async with rig() as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 5)

        async def broken() -> None:
            await asyncio.sleep(0.1)
            raise RuntimeError("a bug in another part of treadctl")

        async def owner() -> None:
            await r.task  # cancelling the owner cancels the controller task it awaits

        t0 = time.monotonic()
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(owner(), name="test.controller-owner")
                tg.create_task(broken(), name="test.broken")
        await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte on the wire")
        await r.until(lambda: r.sim.belt.still, 3)


# --- rule 6: controlled stop, broker loss, heart-rate signal loss --------------------------------


async def test_rule6_stop_is_a_controlled_ramp_down() -> None:
    async with rig(DEFAULT) as r:
        assert (await r.run(c.ManualSet(2.0, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.9, 10)
        t0 = time.monotonic()
        assert (await r.run(c.Stop())).ok
        assert r.controller.mode is Mode.STOPPING
        await r.mode(Mode.IDLE, 10)
        down = [(w.at, w.kmh) for w in r.wire_speeds() if w.at >= t0]
        assert len(down) >= 10  # many small steps, not one jump
        assert_ramped(down, DEFAULT.accel_kmh_s, DEFAULT.start_speed_kmh)
        assert Op.AUTO_STOP in r.ops_since(t0)
        assert Op.STOP not in r.ops_since(t0)  # no emergency stop needed
        finished = [e for e in r.events if e.type == "session_finished"]
        assert finished[-1].details["ended"] == "stopped"


async def test_rule6_broker_loss_stops_the_belt_after_the_grace_time() -> None:
    async with rig(with_rules(broker_loss_s=0.5)) as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 5)
        lost_at = time.monotonic()
        assert (await r.run(c.BrokerState(connected=False))).ok
        await r.until(lambda: r.controller.mode is not Mode.RUNNING, 5, "the stop")
        assert time.monotonic() - lost_at >= 0.5  # it ran on through the grace time
        await r.mode(Mode.IDLE, 10)
        assert r.finished()["cause"] == "broker_lost"
        assert r.sim.belt.still


async def test_rule6_broker_loss_can_be_configured_to_continue() -> None:
    async with rig(with_rules(broker_loss_s=0.3, broker_loss_continue=True)) as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        assert (await r.run(c.BrokerState(connected=False))).ok
        await r.until(lambda: "broker_lost" in r.event_types(), 3, "broker_lost after 0.3 s")
        await r.ticks(5)
        assert r.controller.mode is Mode.RUNNING


async def test_rule6_heart_rate_signal_lost_slows_to_2_kmh_then_stops() -> None:
    rules = with_rules(heart_rate_max_bpm=160, heart_rate_lost_s=1.0, hr_lost_stop_s=2.0)
    async with rig(rules) as r:
        assert (await r.run(c.HeartRate(110))).ok
        assert (await r.run(c.ManualSet(3.0, FWD))).ok
        while r.sim.belt.speed_kmh < 2.85:  # 1.8 mph: 3.0 km/h floored to 0.1 mph
            assert (await r.run(c.HeartRate(112))).ok  # the strap still reports
            await asyncio.sleep(0.3)
        # no more heart-rate readings from now
        await r.until(lambda: "heart_rate_lost" in r.event_types(), 3)
        await r.until(lambda: abs(r.sim.belt.speed_kmh - 1.93) < 0.05, 5, "slowed to 2 km/h")
        slowed = time.monotonic()
        await r.mode(Mode.IDLE, 10)
        after = [w.kmh for w in r.wire_speeds() if w.at > slowed]
        assert after  # it went on at the slow speed, then ramped down
        assert max(after) <= HR_LOST_SLOW_KMH
        assert after[-1] == 0
        assert r.finished()["cause"] == "heart_rate_lost"


async def test_rule6_maximum_session_duration() -> None:
    async with rig(with_rules(max_session_s=1.5)) as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.mode(Mode.STOPPING, 5)
        await r.mode(Mode.IDLE, 10)
        assert r.finished()["cause"] == "max_duration"


# --- rule 7: 3 s start interlock after power-up and e-stop ---------------------------------------


async def test_rule7_starts_refused_for_3_s_after_power_up_and_after_an_estop() -> None:
    async with rig(DEFAULT, wait_interlock=False) as r:
        res = await r.run(c.ManualSet(1.0, FWD))
        assert (res.ok, res.code) == (False, "interlock_active")
        await asyncio.sleep(3.1)
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.controller.emergency_stop()
        await r.until(lambda: r.sim.belt.still, 3)
        assert (await r.run(c.Reset())).ok
        res = await r.run(c.ManualSet(1.0, FWD))
        assert (res.ok, res.code) == (False, "interlock_active")
        n_starts = r.sim.wire.rx.count(Op.START_WATCHDOG)
        await asyncio.sleep(3.1)
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        assert r.sim.wire.rx.count(Op.START_WATCHDOG) == n_starts + 1


# --- rule 8 and the link: the treadmill's watchdog, silence, unplug ------------------------------


async def test_rule8_the_belt_runs_with_the_watchdog_armed() -> None:
    async with rig() as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.ticks(10)  # a second of the belt running
        assert r.sim.belt.watchdog_armed
        assert Op.START not in r.sim.wire.rx  # never the unguarded start
        gaps = [
            b.at - a.at for a, b in zip(r.sim.wire.requests, r.sim.wire.requests[1:], strict=False)
        ]
        assert max(gaps) < 0.5


async def test_cancelling_the_controller_stops_the_belt() -> None:
    async with rig() as r:
        assert (await r.run(c.ManualSet(1.5, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.0, 5)
        t0 = time.monotonic()
        r.task.cancel()
        await r.until(r.task.done, 3)
        await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte on the wire")
        await r.until(lambda: r.sim.belt.still, 3)


async def test_silence_from_the_treadmill_becomes_fault_and_the_belt_is_stopped() -> None:
    async with rig() as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 5)
        t0 = time.monotonic()
        r.sim.faults.silent = True
        await r.mode(Mode.FAULT, 3)
        # commanded to stop (it still hears us); the mode is set just before the stop is written
        await r.until(lambda: Op.STOP in r.ops_since(t0), 1, "stop on the wire")
        await r.until(lambda: r.sim.belt.still, 3)
        assert "fault" in r.event_types()
        res = await r.run(c.ManualSet(1.0, FWD))
        assert res.code == "not_allowed_in_mode"
        r.sim.faults.silent = False
        await r.until(lambda: "link_restored" in r.event_types(), 5)
        assert r.controller.mode is Mode.FAULT  # never resumes by itself
        assert (await r.run(c.Reset())).ok
        await r.interlock_over()
        assert (await r.run(c.ManualSet(1.0, FWD))).ok


async def test_unplug_becomes_fault_and_replug_can_be_reset(tmp_path: Path) -> None:
    async with rig(link=tmp_path / "treadmill") as r:
        assert (await r.run(c.ManualSet(1.0, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 0.3, 5, "belt moving")
        r.sim.unplug()
        unplugged = time.monotonic()
        await r.mode(Mode.FAULT, 2)
        assert time.monotonic() - unplugged < 1.0
        res = await r.run(c.Reset())
        assert res.code == "link_lost"
        ended = r.finished()
        assert (ended["ended"], ended["cause"]) == ("fault", "link_lost")
        r.sim.replug()
        await r.until(lambda: "link_restored" in r.event_types(), 5)
        await r.until(lambda: r.sim.belt.still, 3)  # the treadmill's watchdog stopped it
        assert (await r.run(c.Reset())).ok
        assert r.controller.mode is Mode.IDLE


async def test_rule7_a_request_invalid_at_any_time_says_so_before_the_interlock() -> None:
    async with rig(DEFAULT, wait_interlock=False) as r:
        unknown = await r.run(c.Start("no-such-program"))
        assert (unknown.ok, unknown.code) == (False, "unknown_program")
        bad = await r.run(c.Start("backward-intervals", {"comfortable_backward_kmh": 99.0}))
        assert (bad.ok, bad.code) == (False, "program_invalid")
        too_fast = await r.run(c.ManualSet(99.0, FWD))
        assert (too_fast.ok, too_fast.code) == (False, "out_of_range")
        valid = await r.run(c.Start("backward-intervals"))
        assert (valid.ok, valid.code) == (False, "interlock_active")  # still within the 3 s
        assert Op.START_WATCHDOG not in r.sim.wire.rx


async def test_rule2_a_manual_speed_below_the_treadmills_slowest_is_refused() -> None:
    async with rig() as r:
        slowest = r.driver.capabilities.speed_min_kmh
        assert r.controller.supervisor.rules.speed_min_kmh == slowest  # the driver's fact wins
        res = await r.run(c.ManualSet(slowest / 2, FWD))
        assert (res.ok, res.code) == (False, "out_of_range")
        assert Op.START_WATCHDOG not in r.sim.wire.rx
