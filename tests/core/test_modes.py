"""The mode table: what each trigger does in each mode, and what it may never do."""

from __future__ import annotations

import itertools

import pytest

from treadctl.core.modes import EDGES, Trigger, latched_mode, transition
from treadctl.core.state import Mode

IDLE, RUNNING, PAUSED, STOPPING, ESTOP, FAULT = (
    Mode.IDLE,
    Mode.RUNNING,
    Mode.PAUSED,
    Mode.STOPPING,
    Mode.ESTOP,
    Mode.FAULT,
)


@pytest.mark.parametrize(
    ("mode", "trigger", "after"),
    [
        (IDLE, Trigger.STARTED, RUNNING),
        (RUNNING, Trigger.PAUSE, PAUSED),
        (PAUSED, Trigger.RESUME, RUNNING),
        (RUNNING, Trigger.STOP, STOPPING),
        (PAUSED, Trigger.STOP, STOPPING),
        (STOPPING, Trigger.STOPPED, IDLE),
        (STOPPING, Trigger.ESTOP, ESTOP),
        (FAULT, Trigger.ESTOP, FAULT),
        (ESTOP, Trigger.LINK_LOST, FAULT),
        (ESTOP, Trigger.RESET, IDLE),
        (FAULT, Trigger.RESET, IDLE),
    ],
)
def test_transitions(mode: Mode, trigger: Trigger, after: Mode) -> None:
    assert transition(mode, trigger) is after


@pytest.mark.parametrize("trigger", [t for t in Trigger if t is not Trigger.RESET])
def test_nothing_but_reset_leaves_a_latched_mode(trigger: Trigger) -> None:
    for mode in (ESTOP, FAULT):
        after = transition(mode, trigger)
        assert after is None or latched_mode(after)


def test_every_mode_can_be_latched_and_faulted() -> None:
    for mode in Mode:
        assert latched_mode(transition(mode, Trigger.ESTOP) or IDLE)
        assert transition(mode, Trigger.LINK_LOST) is FAULT


def test_reset_applies_only_when_latched() -> None:
    for mode in Mode:
        assert (transition(mode, Trigger.RESET) is not None) == latched_mode(mode)


def test_the_belt_starts_only_from_idle() -> None:
    for mode in Mode:
        assert (transition(mode, Trigger.STARTED) is not None) == (mode is IDLE)


def test_edges_are_the_table() -> None:
    table = {
        (mode, after)
        for mode, trigger in itertools.product(Mode, Trigger)
        if (after := transition(mode, trigger)) is not None and after is not mode
    }
    assert table == EDGES
    assert (ESTOP, RUNNING) not in EDGES
    assert (FAULT, RUNNING) not in EDGES
