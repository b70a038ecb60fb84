"""The program file format: durations, speeds, blocks, parameters, and errors naming the key."""

from __future__ import annotations

import pytest

from treadctl.core.program import Block, Program, format_duration, parse_duration
from treadctl.programs.library import ProgramFileError, parse_program

BASE = """
name = "demo-program"
title = "A program"
[parameters.comfortable_backward_kmh]
description = "comfortable backward speed"
default = 1.0
min = 0.3
max = 3.0
"""


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(90, 90.0), (90.5, 90.5), ("90", 90.0), ("90s", 90.0), ("1m30s", 90.0), ("3m", 180.0),
     ("1h", 3600.0), ("1h15m", 4500.0), (" 2m 5s ", 125.0), ("0.5m", 30.0)],
)  # fmt: skip
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "soon", "1x", "m", "-5s"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45, "45s"),
        (2.5, "2.5s"),
        (90, "1m 30s"),
        (180, "3m"),
        (3600, "1h 00m"),
        (3725, "1h 02m 05s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_phases_blocks_and_fractions_parse() -> None:
    program = parse_program(
        BASE
        + """
[[phases]]
name = "warm-up"
duration = "2m"
walk = "forward"
speed_kmh = 2.0

[[phases]]
name = "intervals"
repeat = 3
[[phases.phases]]
name = "back"
duration = 60
walk = "backward"
speed_fraction = 0.8
ramp = "10s"
cue = "go"
""",
        "test.toml",
    )
    assert isinstance(program.phases[1], Block)
    numbered = program.leaf_phases()
    assert [(n, r, p.name) for n, r, p in numbered] == [(1, 1, "warm-up"), (2, 3, "back")]
    assert program.parameter_of(numbered[1][2]) == "comfortable_backward_kmh"


@pytest.mark.parametrize(
    ("phase", "message"),
    [
        (
            "speed_kmh = 2.0\nspeed_fraction = 0.5",
            "phases[1]: give exactly one of speed_kmh and speed_fraction",
        ),
        ("", "phases[1]: give exactly one of speed_kmh and speed_fraction"),
        ("speed_kmh = 2.0\nbogus = 1", "phases[1].bogus: unknown key"),
        ("speed_kmh = -1.0", "phases[1].speed_kmh: Input should be greater than or equal to 0"),
        ('speed_fraction = 0.5\nspeed_of = "nope"', "unknown parameter 'nope'"),
        ('speed_kmh = 1.0\nspeed_of = "comfortable_backward_kmh"', "speed_of needs speed_fraction"),
    ],
)
def test_phase_errors_name_the_phase_and_key(phase: str, message: str) -> None:
    text = BASE + f'[[phases]]\nname = "p"\nduration = 60\nwalk = "backward"\n{phase}\n'
    with pytest.raises(ProgramFileError) as info:
        parse_program(text, "mine.toml")
    assert "mine.toml: " in str(info.value)
    assert message in str(info.value)


def test_bad_duration_and_walk_name_the_key() -> None:
    text = BASE + '[[phases]]\nname = "p"\nduration = "soon"\nwalk = "sideways"\nspeed_kmh = 1.0\n'
    with pytest.raises(ProgramFileError) as info:
        parse_program(text, "mine.toml")
    assert "mine.toml: phases[1].duration: not a duration: 'soon'" in str(info.value)
    assert "mine.toml: phases[1].walk: Input should be 'forward' or 'backward'" in str(info.value)


def test_fraction_needs_a_parameter_name_when_there_are_several() -> None:
    data = {
        "name": "x",
        "title": "X",
        "parameters": {
            "a": {"description": "a", "default": 1.0, "min": 0.5, "max": 2.0},
            "b": {"description": "b", "default": 1.0, "min": 0.5, "max": 2.0},
        },
        "phases": [{"name": "p", "duration": 60, "walk": "backward", "speed_fraction": 0.5}],
    }
    with pytest.raises(ValueError, match='phase 1 "p": speed_fraction needs speed_of'):
        Program.model_validate(data)


def test_parameter_default_must_lie_in_range() -> None:
    text = BASE.replace("default = 1.0", "default = 5.0") + (
        '[[phases]]\nname = "p"\nduration = 60\nwalk = "forward"\nspeed_kmh = 1\n'
    )
    with pytest.raises(ProgramFileError, match=r"default 5\.0 must lie within"):
        parse_program(text, "mine.toml")


def test_toml_syntax_error() -> None:
    with pytest.raises(ProgramFileError, match=r"mine\.toml: not valid TOML"):
        parse_program("name = ", "mine.toml")
