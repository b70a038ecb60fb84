"""Expansion of programs into timelines for reverse-belt and face-away devices."""

from __future__ import annotations

import math

import pytest

from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.program import Program
from treadctl.core.timeline import US, DeviceProfile, StepKind, build_timeline
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver

WOODWAY = DeviceProfile("woodway", WoodwayDriver.capabilities)
FACE_AWAY = DeviceProfile("trackmaster", TrackmasterDriver.capabilities, retro_mode="face-away")
A = WOODWAY.accel_kmh_s  # 0.54 km/h per s


def make(*phases: tuple[str, float, float], ramp: float = 0.0) -> Program:
    return Program.model_validate(
        {
            "name": "t",
            "title": "T",
            "phases": [
                {"name": f"p{i}", "walk": w, "duration": d, "speed_kmh": v, "ramp": ramp}
                for i, (w, d, v) in enumerate(phases, 1)
            ],
        }
    )


def test_reverse_belt_inserts_ramp_down_standstill_and_countdown() -> None:
    tl = build_timeline(make(("forward", 60, 2.0), ("backward", 60, 1.5)), WOODWAY)
    kinds = [s.kind for s in tl.steps]
    assert kinds == [
        StepKind.COUNTDOWN,
        StepKind.PHASE,
        StepKind.RAMP_DOWN,
        StepKind.STANDSTILL,
        StepKind.COUNTDOWN,
        StepKind.PHASE,
        StepKind.RAMP_DOWN,
    ]
    belts = [s.belt for s in tl.steps]
    assert belts[:4] == [BeltDirection.FORWARD] * 4
    assert belts[4:] == [BeltDirection.REVERSE] * 3
    assert tl.steps[0].duration_us == 3 * US
    assert tl.steps[2].duration_us == math.ceil(2.0 / A * US)
    assert tl.steps[3].duration_us == 2 * US  # ≥ 2 s still before the reversal
    assert tl.steps[4].duration_us == 3 * US
    assert tl.steps[3].from_kmh == 0.0
    assert tl.steps[3].speed_kmh == 0.0
    assert tl.steps[-1].end_kmh == 0.0  # every program ends with the belt still
    assert tl.steps[4].cue == "The belt starts reverse in 3 s: walk backward"


def test_face_away_turns_the_person_round_and_never_reverses_the_belt() -> None:
    tl = build_timeline(make(("forward", 60, 2.0), ("backward", 60, 1.5)), FACE_AWAY)
    assert [s.kind for s in tl.steps] == [
        StepKind.COUNTDOWN,
        StepKind.PHASE,
        StepKind.RAMP_DOWN,
        StepKind.TURN_AROUND,
        StepKind.COUNTDOWN,
        StepKind.PHASE,
        StepKind.RAMP_DOWN,
    ]
    assert {s.belt for s in tl.steps} == {BeltDirection.FORWARD}
    turn = tl.steps[3]
    assert turn.duration_us == 5 * US
    assert turn.cue == "Belt stopped. Turn around to walk backward, facing away from the console"
    assert tl.steps[5].walk is WalkDirection.BACKWARD


def test_same_direction_phases_flow_without_stopping() -> None:
    tl = build_timeline(make(("backward", 30, 1.0), ("backward", 30, 2.0)), WOODWAY)
    assert [s.kind for s in tl.steps] == [
        StepKind.COUNTDOWN,
        StepKind.PHASE,
        StepKind.PHASE,
        StepKind.RAMP_DOWN,
    ]
    assert tl.steps[2].from_kmh == pytest.approx(1.0)


def test_steps_are_contiguous_and_exact() -> None:
    tl = build_timeline(
        make(("forward", 61.5, 2.0), ("backward", 90, 1.0), ("forward", 30, 3.0)), WOODWAY
    )
    for before, after in zip(tl.steps, tl.steps[1:], strict=False):
        assert after.start_us == before.end_us
        assert after.from_kmh == pytest.approx(before.end_kmh)
    assert tl.total_us == tl.steps[-1].end_us


def test_ramp_time_slows_the_ramp_but_never_steepens_it() -> None:
    slow = build_timeline(make(("forward", 60, 2.0), ramp=20), WOODWAY).steps[1]
    assert slow.slope_kmh_s == pytest.approx(2.0 / 20)
    fast = build_timeline(make(("forward", 60, 2.0), ramp=1), WOODWAY).steps[1]
    assert fast.slope_kmh_s == pytest.approx(A)  # 2 km/h in 1 s would exceed 0.15 m/s²


def test_distance_matches_numeric_integration() -> None:
    tl = build_timeline(
        make(("forward", 30, 3.0), ("forward", 5, 1.0), ("backward", 40, 2.0), ramp=8), WOODWAY
    )
    dt = 1000  # µs
    numeric = sum(
        step.speed_at(t) * dt / US / 3.6
        for step in tl.steps
        for t in range(0, step.duration_us, dt)
    )
    assert tl.distance_m() == pytest.approx(numeric, rel=1e-3)


def test_repeats_are_numbered() -> None:
    program = Program.model_validate(
        {
            "name": "t",
            "title": "T",
            "phases": [
                {
                    "name": "blk",
                    "repeat": 2,
                    "phases": [{"name": "b", "walk": "backward", "duration": 10, "speed_kmh": 1}],
                }
            ],
        }
    )
    tl = build_timeline(program, WOODWAY)
    assert [i.label for i in tl.instances] == ['phase 1 "b" (repeat 1)', 'phase 1 "b" (repeat 2)']


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown parameter"):
        build_timeline(make(("forward", 10, 1.0)), WOODWAY, {"nope": 1.0})
