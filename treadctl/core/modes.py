"""The controller's mode machine: every change of mode is one of these transitions.

Pure: the controller asks `transition(mode, trigger)` before it writes any state that follows
an await, so an emergency stop that landed during the await wins. A start confirmed by the
treadmill after an e-stop latched, for instance, finds the mode `estop`, where `started` is not
a transition: the start is answered as refused and nothing is written.
"""

from __future__ import annotations

import enum

from treadctl.core.state import Mode


class Trigger(enum.StrEnum):
    STARTED = "started"  # the treadmill confirmed a session's start
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # a controlled stop begins (command, program end, a safety rule)
    STOPPED = "stopped"  # the controlled stop is done: the belt is still
    ESTOP = "estop"  # the latch is set, from any source
    LINK_LOST = "link_lost"
    RESET = "reset"  # the latch is cleared


_ACTIVE = (Mode.IDLE, Mode.RUNNING, Mode.PAUSED, Mode.STOPPING)

_TABLE: dict[tuple[Mode, Trigger], Mode] = {
    (Mode.IDLE, Trigger.STARTED): Mode.RUNNING,
    (Mode.RUNNING, Trigger.PAUSE): Mode.PAUSED,
    (Mode.PAUSED, Trigger.RESUME): Mode.RUNNING,
    (Mode.RUNNING, Trigger.STOP): Mode.STOPPING,
    (Mode.PAUSED, Trigger.STOP): Mode.STOPPING,
    (Mode.STOPPING, Trigger.STOPPED): Mode.IDLE,
    **{(mode, Trigger.ESTOP): Mode.ESTOP for mode in (*_ACTIVE, Mode.ESTOP)},
    (Mode.FAULT, Trigger.ESTOP): Mode.FAULT,  # the fault says more than the latch
    **{(mode, Trigger.LINK_LOST): Mode.FAULT for mode in Mode},
    (Mode.ESTOP, Trigger.RESET): Mode.IDLE,
    (Mode.FAULT, Trigger.RESET): Mode.IDLE,
}

# Every (from, to) pair a mode change may take, self-loops excluded: for checks and docs.
EDGES: frozenset[tuple[Mode, Mode]] = frozenset(
    (old, new) for (old, _), new in _TABLE.items() if old is not new
)


def transition(mode: Mode, trigger: Trigger) -> Mode | None:
    """The mode after `trigger`, or None when the trigger does not apply in `mode`."""
    return _TABLE.get((mode, trigger))


def latched_mode(mode: Mode) -> bool:
    """Modes in which the e-stop latch is set (the only ones in which it may be)."""
    return mode in (Mode.ESTOP, Mode.FAULT)
