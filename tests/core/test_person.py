"""A person's limits: they only tighten the device's, and a target beyond one the person tightened
is refused naming it (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadctl.core.device import WalkDirection
from treadctl.core.person import (
    LIMIT_EXCEEDED,
    PersonError,
    PersonLimits,
    check_person_id,
    combined,
    program_refusal,
    session_rules,
    target_refusal,
)
from treadctl.core.safety import SafetyRules
from treadctl.programs.library import parse_program

RULES = SafetyRules(max_speed_backward_kmh=3.0, max_speed_forward_kmh=6.0, heart_rate_max_bpm=150)

PROGRAM = """
name = "two-way"
title = "Forward, then backward"
[parameters.comfortable_backward_kmh]
description = "comfortable backward speed"
default = 2.0
min = 0.5
max = 3.0

[[phases]]
name = "warm-up"
duration = "1m"
walk = "forward"
speed_kmh = 3.0

[[phases]]
name = "backward"
duration = "2m"
walk = "backward"
speed_fraction = 1.0
incline_pct = 4
"""


@pytest.mark.parametrize("good", ["p-001", "mrs-k", "a", "x" * 32])
def test_person_ids_are_pseudonymous_tokens(good: str) -> None:
    assert check_person_id(good) == good


@pytest.mark.parametrize("bad", ["", "Mrs K", "x" * 33, "ü", "a/b", 7, None])
def test_other_person_ids_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(PersonError, match=r"^person: "):
        check_person_id(bad)


def test_limits_parse_from_a_payload_and_name_a_bad_field() -> None:
    limits = PersonLimits.from_mapping({"max_speed_backward_kmh": 1.5, "heart_rate_max_bpm": 120})
    assert limits.as_dict() == {"max_speed_backward_kmh": 1.5, "heart_rate_max_bpm": 120}
    with pytest.raises(PersonError, match="limits: unknown key speed"):
        PersonLimits.from_mapping({"speed": 1})
    with pytest.raises(PersonError, match=r"limits\.max_incline_pct: must be a positive"):
        PersonLimits.from_mapping({"max_incline_pct": -1})
    with pytest.raises(PersonError, match=r"limits\.max_speed_forward_kmh: a number"):
        PersonLimits.from_mapping({"max_speed_forward_kmh": "fast"})
    with pytest.raises(PersonError, match=r"limits\.max_speed_forward_kmh: a number"):
        PersonLimits.from_mapping({"max_speed_forward_kmh": True})
    with pytest.raises(PersonError, match=r"limits\.heart_rate_max_bpm: a whole number"):
        PersonLimits.from_mapping({"heart_rate_max_bpm": 120.5})
    with pytest.raises(PersonError, match=r"limits\.max_speed_backward_kmh: must be a positive"):
        PersonLimits.from_mapping({"max_speed_backward_kmh": math.nan})
    with pytest.raises(PersonError, match=r"^limits: an object"):
        PersonLimits.from_mapping([1.0])


def test_session_rules_take_the_tighter_of_each_and_ignore_looser_ones() -> None:
    rules = session_rules(
        RULES,
        PersonLimits(
            max_speed_backward_kmh=1.5,
            max_speed_forward_kmh=9.0,  # looser than the device's 6.0: ignored
            max_incline_pct=5.0,
            heart_rate_max_bpm=120,
        ),
    )
    assert rules.max_speed_backward_kmh == 1.5
    assert rules.max_speed_forward_kmh == 6.0
    assert rules.max_incline_backward_pct == 5.0
    assert rules.max_incline_forward_pct == 5.0
    assert rules.heart_rate_max_bpm == 120
    assert session_rules(RULES, PersonLimits(heart_rate_max_bpm=200)).heart_rate_max_bpm == 150
    no_hr = SafetyRules(heart_rate_max_bpm=None)
    assert session_rules(no_hr, PersonLimits(heart_rate_max_bpm=110)).heart_rate_max_bpm == 110


@given(
    device=st.floats(0.5, 6.5),
    mine=st.one_of(st.none(), st.floats(0.1, 20.0)),
)
def test_a_session_cap_is_never_looser_than_the_device(device: float, mine: float | None) -> None:
    rules = session_rules(
        SafetyRules(max_speed_backward_kmh=device), PersonLimits(max_speed_backward_kmh=mine)
    )
    assert rules.max_speed_backward_kmh <= device
    if mine is not None:
        assert rules.max_speed_backward_kmh <= mine


def test_a_target_beyond_the_persons_tighter_limit_is_limit_exceeded() -> None:
    limits = PersonLimits(max_speed_backward_kmh=1.5, max_incline_pct=3.0)
    refusal = target_refusal(
        WalkDirection.BACKWARD, 2.0, 0.0, limits=limits, rules=RULES, what="target"
    )
    assert refusal is not None
    assert refusal[0] == LIMIT_EXCEEDED
    assert "max_speed_backward_kmh = 1.5" in refusal[1]
    assert (
        target_refusal(WalkDirection.BACKWARD, 1.5, 0.0, limits=limits, rules=RULES, what="t")
        is None
    )
    steep = target_refusal(WalkDirection.FORWARD, 1.0, 4.0, limits=limits, rules=RULES, what="t")
    assert steep is not None
    assert "max_incline_pct = 3" in steep[1]


def test_a_looser_person_limit_is_never_the_refusal() -> None:
    """Beyond the device's own cap is the device's refusal (out_of_range), not the person's."""
    loose = PersonLimits(max_speed_forward_kmh=9.0)
    assert (
        target_refusal(WalkDirection.FORWARD, 7.0, 0.0, limits=loose, rules=RULES, what="t") is None
    )


def test_a_program_beyond_the_persons_limit_names_the_phase_and_the_limit() -> None:
    program = parse_program(PROGRAM, "two-way")
    fine = PersonLimits(max_speed_backward_kmh=2.0, max_speed_forward_kmh=3.0)
    assert program_refusal(program, {}, fine, RULES) is None
    slow = PersonLimits(max_speed_backward_kmh=1.5)
    refusal = program_refusal(program, {}, slow, RULES)
    assert refusal is not None
    assert refusal[0] == LIMIT_EXCEEDED
    assert "backward" in refusal[1]
    assert "max_speed_backward_kmh = 1.5" in refusal[1]
    # The same program with a slower comfortable speed fits the person.
    assert program_refusal(program, {"comfortable_backward_kmh": 1.5}, slow, RULES) is None
    flat = PersonLimits(max_incline_pct=2.0)
    refusal = program_refusal(program, {}, flat, RULES)
    assert refusal is not None
    assert "max_incline_pct = 2" in refusal[1]


def test_combined_limits_only_ever_tighten() -> None:
    first = PersonLimits(max_speed_backward_kmh=2.0, heart_rate_max_bpm=130)
    assert combined(None, first) == first
    both = combined(first, PersonLimits(max_speed_backward_kmh=2.5, max_incline_pct=4.0))
    assert both == PersonLimits(
        max_speed_backward_kmh=2.0, max_incline_pct=4.0, heart_rate_max_bpm=130
    )
    assert combined(first, PersonLimits(heart_rate_max_bpm=120)).heart_rate_max_bpm == 120
