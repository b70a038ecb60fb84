"""The safety supervisor on a fake clock, and hypothesis over random interleavings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treadctl.core.device import BeltDirection, DeviceStatus, WalkDirection, whole_steps_at_least
from treadctl.core.safety import (
    HR_LOST_SLOW_KMH,
    ControlledStop,
    EStop,
    EStopCause,
    Notice,
    SafetyRules,
    SafetySupervisor,
    SpeedCommand,
    StopReason,
)

STEP = 0.1609344  # 0.1 mph
RULES = SafetyRules(speed_resolution_kmh=STEP)
FWD, BACK = WalkDirection.FORWARD, WalkDirection.BACKWARD
F, R = BeltDirection.FORWARD, BeltDirection.REVERSE


def status(kmh: float, belt: BeltDirection = F, *, safety_stop: bool = False) -> DeviceStatus:
    return DeviceStatus(
        running=kmh > 0,
        belt=belt,
        speed_kmh=kmh,
        incline_pct=0,
        watchdog_armed=True,
        safety_stop=safety_stop,
    )


def running(rules: SafetyRules = RULES, now: float = 0.0) -> SafetySupervisor:
    sup = SafetySupervisor(rules)
    sup.power_up(now - 10)
    sup.session_start(now)
    sup.observe(status(0), now)
    return sup


def test_power_up_interlock_then_start_allowed() -> None:
    sup = SafetySupervisor(RULES)
    sup.power_up(100.0)
    assert sup.start_refusal(101.0) == (
        "interlock_active",
        "starts are refused for 3 s after an emergency stop or power-up (2.0 s left)",
    )
    assert sup.start_refusal(103.0) is None


def test_latched_estop_zero_at_once_reset_only_when_still() -> None:
    sup = running()
    t = 0.0
    for _ in range(50):
        t += 0.1
        sup.next_speed(2.0, F, FWD, t)
    assert sup.commanded.speed_kmh > 1.5
    sup.latch(EStopCause.COMMAND, "test", t)
    cmd, _ = sup.next_speed(2.0, F, FWD, t + 0.1)
    assert cmd == SpeedCommand(0.0, F)  # not ramped: the fastest stop
    sup.observe(status(1.2), t + 0.1)
    assert sup.reset_refusal(t + 0.1) is not None
    assert sup.start_refusal(t + 0.1) is not None
    sup.observe(status(0), t + 1)
    assert sup.reset_refusal(t + 1) is None
    sup.reset(t + 1)
    refusal = sup.start_refusal(t + 2)
    assert refusal is not None
    assert refusal[0] == "interlock_active"
    assert sup.start_refusal(t + 4.1) is None


def test_treadmill_stop_is_an_estop() -> None:
    sup = running()
    actions = sup.observe(status(0, safety_stop=True), 1.0)
    assert actions == [EStop(EStopCause.TREADMILL, actions[0].detail)]


def test_mismatch_needs_the_grace_time_but_wrong_way_is_immediate() -> None:
    sup = running(SafetyRules(speed_resolution_kmh=STEP, speed_mismatch_grace_s=2.0))
    sup.commanded = SpeedCommand(2.0, F)
    assert sup.observe(status(0.5), 1.0) == []
    assert sup.observe(status(0.5), 2.5) == []
    assert isinstance(sup.observe(status(0.5), 3.1)[0], EStop)
    sup2 = running()
    sup2.commanded = SpeedCommand(2.0, F)
    assert sup2.observe(status(1.0, R), 1.0)[0].cause is EStopCause.SPEED_MISMATCH  # type: ignore[union-attr]


def test_heart_rate_lost_slows_to_2_then_stops_after_60_s() -> None:
    sup = running(
        SafetyRules(speed_resolution_kmh=STEP, heart_rate_max_bpm=150, heart_rate_lost_s=5)
    )
    sup.heart_rate(120, 0.0)
    assert sup.tick(4.0) == []
    actions = sup.tick(5.5)
    assert actions == [Notice("heart_rate_lost", actions[0].detail)]
    t = 5.5
    for _ in range(100):
        t += 0.1
        cmd, _ = sup.next_speed(3.0, F, FWD, t)
    assert cmd.speed_kmh <= HR_LOST_SLOW_KMH
    assert sup.tick(64.0) == []
    assert sup.tick(65.1) == [
        ControlledStop(StopReason.HEART_RATE_LOST, "no heart-rate signal for 65 s")
    ]


def test_heart_rate_back_before_the_minute_restores_speed() -> None:
    sup = running(
        SafetyRules(speed_resolution_kmh=STEP, heart_rate_max_bpm=150, heart_rate_lost_s=5)
    )
    sup.heart_rate(120, 0.0)
    sup.tick(6.0)
    assert sup.hr_slowed
    sup.heart_rate(118, 20.0)
    assert not sup.hr_slowed


def test_heart_rate_above_max_and_deadman() -> None:
    sup = running(SafetyRules(heart_rate_max_bpm=140, deadman_s=3))
    assert sup.heart_rate(141, 1.0)[0].cause is EStopCause.HEART_RATE  # type: ignore[union-attr]
    sup2 = running(SafetyRules(deadman_s=3))
    sup2.heartbeat(2.0)
    assert sup2.tick(4.9) == []
    assert sup2.tick(5.1)[0].cause is EStopCause.DEADMAN  # type: ignore[union-attr]


def test_broker_loss_policy() -> None:
    sup = running(SafetyRules(broker_loss_s=10))
    sup.broker(False, 1.0)
    assert sup.tick(10.9) == []
    assert sup.tick(11.1)[0] == ControlledStop(
        StopReason.BROKER_LOST, "MQTT broker lost for more than 10 s"
    )
    sup2 = running(SafetyRules(broker_loss_s=10, broker_loss_continue=True))
    sup2.broker(False, 1.0)
    assert isinstance(sup2.tick(11.1)[0], Notice)
    assert sup2.tick(12.0) == []  # said once


def test_max_session_duration() -> None:
    sup = running(SafetyRules(max_session_s=60))
    assert sup.tick(59) == []
    assert sup.tick(61)[0].reason is StopReason.MAX_DURATION  # type: ignore[union-attr]


def test_start_speed_and_caps() -> None:
    sup = running(SafetyRules(speed_resolution_kmh=0.0, max_accel_mps2=0.15))
    cmd, _ = sup.next_speed(5.0, R, BACK, 0.0)
    t = 0.0
    speeds = []
    for _ in range(200):
        t += 0.1
        sup.observe(status(sup.commanded.speed_kmh, sup.commanded.belt), t)
        cmd, _ = sup.next_speed(5.0, R, BACK, t)
        speeds.append(cmd.speed_kmh)
    assert max(speeds) == pytest.approx(3.0)  # the backward cap, not the 5 km/h asked for
    assert cmd.belt is R


# --- the treadmill's minimum speed ---------------------------------------------------------------

MIN_RULES = SafetyRules(speed_resolution_kmh=STEP, speed_min_kmh=2 * STEP)  # 0.2 mph


def drive(
    sup: SafetySupervisor, want: float, t: float, seconds: float, dt: float = 0.1
) -> tuple[float, list[tuple[float, float]]]:
    """Ask for `want` every `dt` for `seconds`, the belt following at once; (time, changes)."""
    changes: list[tuple[float, float]] = []
    for _ in range(round(seconds / dt)):
        t += dt
        sup.observe(status(sup.commanded.speed_kmh), t)
        before = sup.commanded.speed_kmh
        cmd, _ = sup.next_speed(want, F, FWD, t)
        if cmd.speed_kmh != before:
            changes.append((t, cmd.speed_kmh))
    return t, changes


def test_the_ramp_jumps_from_zero_to_the_minimum_when_the_ramp_reaches_it() -> None:
    sup = running(MIN_RULES)
    _, up = drive(sup, 2.0, 0.0, 6.0)
    first_t, first = up[0]
    assert first == pytest.approx(2 * STEP)  # never 0.1 mph
    assert first <= MIN_RULES.accel_kmh_s * first_t + 1e-9  # the jump is within the ramp
    # The first call starts the ramp (t = 0.1); 0.54 km/h/s reaches 0.32 km/h 6 ticks later.
    assert first_t == pytest.approx(0.7)
    assert [v for _, v in up][-1] == pytest.approx(12 * STEP)  # 2.0 km/h in whole 0.1 mph


def test_the_ramp_holds_the_minimum_then_drops_to_zero_within_the_budget() -> None:
    sup = running(MIN_RULES)
    t, _ = drive(sup, 2.0, 0.0, 6.0)
    t, down = drive(sup, 0.0, t, 6.0)
    speeds = [v for _, v in down]
    assert speeds[-1] == 0
    assert speeds[-2] == pytest.approx(2 * STEP)  # the last speed before 0 is the minimum
    assert all(v == 0 or v >= 2 * STEP - 1e-9 for v in speeds)
    (t1, v1), (t2, v2) = down[-2:]
    assert v1 - v2 <= MIN_RULES.accel_kmh_s * (t2 - t1) + 1e-9


def test_a_target_below_the_minimum_is_zero() -> None:
    sup = running(MIN_RULES)
    _, changes = drive(sup, 0.2, 0.0, 5.0)  # 0.2 km/h: between 0.1 and 0.2 mph
    assert changes == []  # never 0.1 mph
    t, _ = drive(sup, 2.0, 5.0, 6.0)
    _, down = drive(sup, 0.2, t, 6.0)
    assert down[-1][1] == 0


def test_the_minimum_may_not_exceed_the_start_speed() -> None:
    with pytest.raises(ValueError, match="above the start speed"):
        SafetyRules(speed_resolution_kmh=STEP, speed_min_kmh=0.6, start_speed_kmh=0.5)
    SafetyRules(speed_min_kmh=0.5, start_speed_kmh=0.5)  # equal is allowed


def test_an_estop_at_the_minimum_is_zero_at_once() -> None:
    sup = running(MIN_RULES)
    t, _ = drive(sup, 2.0, 0.0, 6.0)
    t, _ = drive(sup, 0.0, t, 3.4)
    assert sup.commanded.speed_kmh == pytest.approx(2 * STEP)
    sup.latch(EStopCause.COMMAND, "test", t)
    cmd, _ = sup.next_speed(0.0, F, FWD, t)
    assert cmd.speed_kmh == 0


# --- hypothesis ----------------------------------------------------------------------------------

step_st = st.one_of(
    st.tuples(st.just("want"), st.floats(0, 20), st.sampled_from([FWD, BACK]), st.floats(0.0, 1.5)),
    st.tuples(st.just("estop"), st.just(0.0), st.just(FWD), st.floats(0.0, 1.0)),
    st.tuples(st.just("reset"), st.just(0.0), st.just(FWD), st.floats(0.0, 1.0)),
    st.tuples(st.just("hr"), st.floats(40, 220), st.just(FWD), st.floats(0.0, 1.0)),
    st.tuples(st.just("stall"), st.just(0.0), st.just(FWD), st.floats(0.0, 5.0)),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(step_st, max_size=120),
    resolution=st.sampled_from([0.0, STEP, 0.05]),
    minimum=st.sampled_from([0.0, 0.3, 0.45]),
    lag=st.floats(0.2, 1.0),
)
def test_property_no_command_above_cap_beyond_ramp_or_reversing_while_moving(
    steps: list[tuple[str, float, WalkDirection, float]],
    resolution: float,
    minimum: float,
    lag: float,
) -> None:
    # The minimum in whole wire steps, as the drivers declare it (0.3 is 0.2 mph at 0.1 mph).
    minimum = whole_steps_at_least(minimum, resolution) if minimum and resolution else minimum
    rules = SafetyRules(
        speed_resolution_kmh=resolution,
        speed_min_kmh=minimum,
        heart_rate_max_bpm=180,
        reversal_countdown_s=1.0,
    )
    sup = running(rules)
    t = 0.0
    measured, measured_belt = 0.0, F
    want, walk = 0.0, FWD
    # (time, command, walk, latched when it was sent)
    history: list[tuple[float, SpeedCommand, WalkDirection, bool]] = [
        (t, sup.commanded, FWD, False)
    ]
    still_since: float | None = 0.0
    for kind, value, w, dt in steps:
        t += dt
        # a treadmill that follows the command with a lag
        target = sup.commanded.speed_kmh
        measured = measured + max(-lag * dt * 3.6, min(lag * dt * 3.6, target - measured))
        if sup.commanded.belt is not measured_belt and measured == 0:
            measured_belt = sup.commanded.belt
        still_since = (still_since if still_since is not None else t) if measured == 0 else None
        sup.observe(status(measured, measured_belt), t)
        if kind == "want":
            want, walk = value, w
        elif kind == "estop":
            sup.latch(EStopCause.COMMAND, "test", t)
        elif kind == "reset" and sup.reset_refusal(t) is None:
            sup.reset(t)
        elif kind == "hr":
            sup.heart_rate(int(value), t)
        sup.tick(t)
        belt = BeltDirection.REVERSE if walk is BACK else BeltDirection.FORWARD
        before = sup.commanded
        cmd, _ = sup.next_speed(want, belt, walk, t)
        # 1. never above the cap of the direction the belt runs
        cap = rules.max_speed_backward_kmh if cmd.belt is R else rules.max_speed_forward_kmh
        assert cmd.speed_kmh <= cap + 1e-9
        # 2. a change of direction only from zero, after the standstill and countdown
        if cmd.belt is not before.belt:
            assert before.speed_kmh == 0
            assert cmd.speed_kmh == 0 or cmd.speed_kmh <= rules.start_speed_kmh
            assert measured == 0
            assert still_since is not None
            assert t - still_since >= rules.reversal_standstill_s
        # 3. nothing between 0 and the treadmill's minimum
        assert cmd.speed_kmh == 0 or cmd.speed_kmh >= minimum - 1e-9
        if cmd != history[-1][1]:
            history.append((t, cmd, walk, sup.latched is not None))
    # 4. between any two commands, no step beyond the ramp: neither the jump from 0 to the
    #    minimum nor the drop from it to 0 is an exception; only an e-stop's drop to 0 is (not
    #    ramped on purpose). A start begins at or below the start speed.
    a = rules.accel_kmh_s
    for (t1, c1, _, _), (t2, c2, _, latched) in itertools.pairwise(history):
        if c1.speed_kmh == 0:
            assert c2.speed_kmh <= rules.start_speed_kmh + 1e-9
        if c2.speed_kmh == 0 and latched:
            continue
        assert abs(c2.speed_kmh - c1.speed_kmh) <= a * (t2 - t1) + 1e-6
