"""The explorer's invariants, as pure checks over what it observed.

Each check returns None when the invariant holds, else a sentence saying what broke. They are
written from the product's safety rules (docs/safety.md), not from the controller's code: the
allowed mode edges below are the explorer's own, so a controller that takes another edge is
caught rather than described.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from treadctl.core import commands as cmd
from treadctl.core.commands import Command, Result
from treadctl.core.safety import EStop
from treadctl.core.state import Event, Mode, Snapshot

# Invariant names, as reported with a failing seed (and listed in docs/safety.md).
LATCHED_MOVING = "latched_no_motion"
LATCHED_MODE = "latched_mode"
MODE_EDGE = "mode_edge"
RESET_EXIT = "reset_exit"
ANSWER_ONCE = "answer_once"
ANSWER_BOUNDED = "answer_bounded"
SAFETY_NOT_BUSY = "safety_not_busy"
ANSWER_STATE = "answer_state"
FAULT_STOPS = "fault_stops"
NO_ESCAPE = "no_escape"
SNAPSHOT = "snapshot"
SESSIONS = "sessions"
IDLE_STILL = "idle_still"
ESTOP_AT_ONCE = "estop_at_once"
PROGRESS = "progress"
BELT_STOPS = "belt_stops"
RULE_FIRES = "rule_fires"

HALTED = (Mode.ESTOP, Mode.FAULT)
IN_SESSION = (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING)

# The mode machine of docs/safety.md ("States"), written down independently of the controller.
# estop <-> fault both ways: a link lost while latched is a fault, and an e-stop while in fault
# may show as estop once the link is back; either way the belt stays stopped and reset is
# the only way out.
_OWN_EDGES = {
    (Mode.IDLE, Mode.RUNNING),
    (Mode.RUNNING, Mode.PAUSED),
    (Mode.PAUSED, Mode.RUNNING),
    (Mode.RUNNING, Mode.STOPPING),
    (Mode.PAUSED, Mode.STOPPING),
    (Mode.STOPPING, Mode.IDLE),
    (Mode.ESTOP, Mode.IDLE),  # by reset only (RESET_EXIT)
    (Mode.FAULT, Mode.IDLE),  # by reset only (RESET_EXIT)
    (Mode.ESTOP, Mode.FAULT),
    (Mode.FAULT, Mode.ESTOP),
}
ALLOWED_EDGES: frozenset[tuple[Mode, Mode]] = frozenset(
    _OWN_EDGES
    | {(m, Mode.ESTOP) for m in Mode if m is not Mode.ESTOP}
    | {(m, Mode.FAULT) for m in Mode if m is not Mode.FAULT}
)

SAFETY_INPUTS = (cmd.BrokerState, cmd.HeartRate, cmd.Heartbeat)
STARTS = (cmd.Start, cmd.ManualSet)


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    step: int
    at: float  # virtual seconds
    detail: str

    def line(self) -> str:
        return f"[{self.invariant}] step {self.step} t={self.at:.4f}: {self.detail}"


def latch_problem(mode: Mode, latched: EStop | None) -> str | None:
    """While latched the mode is estop (or fault); mode estop means latched."""
    if latched is not None and mode not in HALTED:
        return f"latched ({latched.cause}) but mode {mode}"
    if mode is Mode.ESTOP and latched is None:
        return "mode estop but nothing latched"
    return None


def driver_call_problem(
    op: str, speed_kmh: float | None, mode: Mode, latched: EStop | None
) -> tuple[str, str] | None:
    """(invariant, detail) when a call that may move the belt reaches the driver when it must
    not: never while latched, and a moving speed only during a session."""
    moving = op == "start" or (op == "set_speed" and speed_kmh is not None and speed_kmh > 0)
    if not moving:
        return None
    what = "start()" if op == "start" else f"set_speed({speed_kmh:g})"
    if latched is not None:
        return LATCHED_MOVING, f"{what} reached the driver while latched ({latched.cause})"
    if op == "start" and mode in HALTED:
        return LATCHED_MOVING, f"start() reached the driver in mode {mode}"
    if op == "set_speed" and mode not in IN_SESSION:
        return IDLE_STILL, f"{what} reached the driver in mode {mode}"
    return None


def snapshot_problem(
    snap: Snapshot, mode: Mode, session_id: str | None, latched: EStop | None
) -> str | None:
    """The published snapshot agrees with the controller at the moment it is emitted."""
    if snap.mode is not mode:
        return f"snapshot says {snap.mode}, controller is in {mode}"
    if snap.session_id != session_id:
        return f"snapshot session {snap.session_id}, controller session {session_id}"
    if snap.mode is Mode.RUNNING and latched is not None:
        return f"snapshot says running while latched ({latched.cause})"
    if snap.mode is Mode.IDLE and snap.session_id is not None:
        return "snapshot says idle with a session"
    if snap.mode in IN_SESSION and snap.session_id is None:
        return f"snapshot says {snap.mode} without a session"
    return None


def answer_problem(  # noqa: PLR0911 - one case per command kind
    command: Command, result: object, mode: Mode, latched: EStop | None
) -> tuple[str, str] | None:
    """(invariant, detail) when an answer, at the moment it is given, disagrees with the state
    it claims or refuses a safety input."""
    if not isinstance(result, Result):
        return ANSWER_ONCE, f"{command!r} answered with {result!r}, not a Result"
    if isinstance(command, SAFETY_INPUTS) and result.code == "busy":
        return SAFETY_NOT_BUSY, f"{command!r} refused busy: {result.message}"
    said = f"{type(command).__name__} answered {result.code or 'ok'} ({result.message!r})"
    if isinstance(command, STARTS):
        if result.ok and (mode is not Mode.RUNNING or latched is not None):
            return ANSWER_STATE, f"{said} but mode {mode}, latched {latched is not None}"
        if result.code == "estop_latched" and mode is not Mode.ESTOP:
            return ANSWER_STATE, f"{said} while the mode says {mode}"
    if isinstance(command, cmd.Reset) and result.ok and (latched is not None or mode in HALTED):
        return ANSWER_STATE, f"{said} but mode {mode}, latched {latched is not None}"
    if isinstance(command, cmd.Pause) and result.ok and mode is not Mode.PAUSED:
        return ANSWER_STATE, f"{said} but mode {mode}"
    if isinstance(command, cmd.Resume) and result.ok and mode is not Mode.RUNNING:
        return ANSWER_STATE, f"{said} but mode {mode}"
    if isinstance(command, cmd.Stop) and result.ok and mode in (Mode.RUNNING, Mode.PAUSED):
        return ANSWER_STATE, f"{said} but mode {mode}"
    return None


@dataclass
class ModeWatch:
    """Every observed mode change must be an allowed edge; estop/fault are left only by a
    reset (its event or its ok answer seen since the mode was last observed halted)."""

    last: Mode = Mode.IDLE
    reset_seen: bool = False
    edges: Counter[tuple[Mode, Mode]] = field(default_factory=Counter)

    def saw_reset(self) -> None:
        self.reset_seen = True

    def observe(self, mode: Mode) -> tuple[str, str] | None:
        previous = self.last
        if mode is previous:
            return None
        self.last = mode
        self.edges[previous, mode] += 1
        if (previous, mode) not in ALLOWED_EDGES:
            return MODE_EDGE, f"mode {previous} -> {mode} is not an allowed transition"
        if previous in HALTED and mode is Mode.IDLE:
            reset, self.reset_seen = self.reset_seen, False
            if not reset:
                return RESET_EXIT, f"mode {previous} -> idle without a reset"
        if mode in HALTED:
            self.reset_seen = False
        return None


@dataclass
class SessionLedger:
    """Each session_started is followed by exactly one session_finished for it, and no
    session starts while another is open."""

    open_id: str | None = None
    seen: set[str] = field(default_factory=set)

    def event(self, event: Event) -> str | None:
        if event.type == "session_started":
            sid = event.session_id
            if sid is None:
                return "session_started without a session id"
            if self.open_id is not None:
                return f"session {sid} started while session {self.open_id} is open"
            if sid in self.seen:
                return f"session id {sid} started twice"
            self.seen.add(sid)
            self.open_id = sid
        elif event.type == "session_finished":
            if event.session_id is None or event.session_id != self.open_id:
                return f"session_finished for {event.session_id}; open is {self.open_id}"
            self.open_id = None
        return None
