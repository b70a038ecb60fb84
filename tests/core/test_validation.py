"""Validation against the device: every limit, with the exact message a user sees."""

from __future__ import annotations

import dataclasses

import pytest

from treadctl.core.device import WalkDirection
from treadctl.core.program import Program
from treadctl.core.timeline import DeviceProfile
from treadctl.core.validation import ProgramInvalid, check_program, validate_program
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver

WOODWAY = DeviceProfile("woodway", WoodwayDriver.capabilities)
TRACKMASTER_FACE_AWAY = DeviceProfile(
    "trackmaster", TrackmasterDriver.capabilities, retro_mode="face-away"
)


def program(*phases: dict[str, object], blocks: list[dict[str, object]] | None = None) -> Program:
    return Program.model_validate(
        {
            "name": "t",
            "title": "T",
            "parameters": {
                "comfortable_backward_kmh": {
                    "description": "c",
                    "default": 1.0,
                    "min": 0.3,
                    "max": 3.0,
                }
            },
            "phases": [*phases, *(blocks or [])],
        }
    )


def phase(name: str = "p", walk: str = "backward", **kw: object) -> dict[str, object]:
    return {"name": name, "duration": 60, "walk": walk, **({"speed_kmh": 1.0} | kw)}


def test_backward_speed_cap_in_a_repeating_block() -> None:
    p = program(
        phase("warm-up", "forward"),
        blocks=[
            {
                "name": "intervals",
                "repeat": 2,
                "phases": [phase("forward bit", "forward"), phase("backward block", speed_kmh=4.0)],
            }
        ],
    )
    assert check_program(p, WOODWAY) == [
        'phase 3 "backward block" (repeat 1): 4.0 km/h exceeds limits.max_speed_backward_kmh = 3.0'
    ]


def test_forward_speed_cap() -> None:
    p = program(phase("fast", "forward", speed_kmh=6.5))
    assert check_program(p, WOODWAY) == [
        'phase 1 "fast": 6.5 km/h exceeds limits.max_speed_forward_kmh = 6.0'
    ]


def test_driver_speed_maximum() -> None:
    slow = dataclasses.replace(WoodwayDriver.capabilities, speed_max_kmh=5.0)
    p = program(phase("brisk", "forward", speed_kmh=5.5))
    assert check_program(p, DeviceProfile("woodway", slow)) == [
        'phase 1 "brisk": 5.5 km/h exceeds the woodway driver\'s maximum of 5.0 km/h'
    ]


def test_speed_from_a_parameter_is_checked_with_the_session_value() -> None:
    p = program(phase("back", speed_fraction=1.2, speed_kmh=None))
    assert check_program(p, WOODWAY) == []  # 1.2 x 1.0 default
    assert check_program(p, WOODWAY, {"comfortable_backward_kmh": 2.9}) == [
        'phase 1 "back": 3.48 km/h exceeds limits.max_speed_backward_kmh = 3.0'
    ]


def test_parameter_outside_its_range_and_unknown_parameters() -> None:
    p = program(phase("back", speed_fraction=0.5, speed_kmh=None))
    assert check_program(p, WOODWAY, {"comfortable_backward_kmh": 3.5, "weight": 70}) == [
        "unknown parameter 'weight' (the program has: comfortable_backward_kmh)",
        "parameter comfortable_backward_kmh = 3.5 km/h is outside 0.3-3.0 km/h",
    ]


def test_incline_caps_per_walk_direction_and_device_range() -> None:
    p = program(phase("up", incline_pct=12.0), phase("down", "forward", incline_pct=-2.0))
    assert check_program(p, WOODWAY) == [
        'phase 1 "up": incline 12.0 % exceeds limits.max_incline_backward_pct = 10.0',
        'phase 2 "down": incline -2.0 % is below the woodway driver\'s minimum of 0.0 %',
    ]
    steep = DeviceProfile("woodway", WoodwayDriver.capabilities, max_incline_forward_pct=30.0)
    assert check_program(program(phase("wall", "forward", incline_pct=26.0)), steep) == [
        'phase 1 "wall": incline 26.0 % exceeds the woodway driver\'s maximum of 25.0 %'
    ]


def test_reverse_belt_needs_a_reversing_driver() -> None:
    trackmaster_reverse = DeviceProfile("trackmaster", TrackmasterDriver.capabilities)
    p = program(phase("fwd", "forward"), phase("back"))
    expected = (
        'phase 2 "back": walking backward with device.retro_mode = "reverse-belt" needs a belt '
        "that runs in reverse, and the trackmaster driver cannot reverse "
        '(use retro_mode = "face-away")'
    )
    assert check_program(p, trackmaster_reverse) == [expected]
    assert check_program(p, TRACKMASTER_FACE_AWAY) == []


def test_total_duration_cap_counts_the_inserted_steps() -> None:
    profile = DeviceProfile("woodway", WoodwayDriver.capabilities, max_session_s=120)
    p = program(phase("a", "forward"), phase("b"))  # 2 min of phases + countdowns and ramps
    assert check_program(p, profile) == [
        "the expanded program takes 2m 12s, which exceeds limits.max_session_s = 120"
    ]


def test_validate_program_raises_with_every_problem() -> None:
    p = program(phase("x", speed_kmh=5.0, incline_pct=11.0))
    with pytest.raises(ProgramInvalid) as info:
        validate_program(p, WOODWAY)
    assert len(info.value.problems) == 2
    assert "program t cannot run here" in str(info.value)


def test_walk_direction_caps_are_distinct() -> None:
    assert WOODWAY.speed_cap(WalkDirection.BACKWARD) == (3.0, "limits.max_speed_backward_kmh")
    assert WOODWAY.speed_cap(WalkDirection.FORWARD) == (6.0, "limits.max_speed_forward_kmh")
