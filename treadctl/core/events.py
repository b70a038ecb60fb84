"""The controller's events that carry structure, each its own type.

Consumers read the typed fields (the session store); `details`, and so `as_dict()`, gives the
wire payload of docs/mqtt.md, in its key order. Events with only a `detail` text (notices,
paused, resumed, skipped, link_restored) stay generic `Event`s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.safety import EStopCause, StopReason
from treadctl.core.session import Ending, SessionSummary
from treadctl.core.state import Event, InputHealth
from treadctl.core.timeline import Step

_COMMON = frozenset(("type", "ts", "session_id", "data"))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Typed(Event):
    """Base of the typed events: `type` is fixed per class, `details` comes from the fields."""

    type: str = field(default="", init=False)
    data: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def details(self) -> dict[str, Any]:
        """The event's own fields in their order, enums as their values; an event whose
        payload is shaped otherwise says so itself."""
        return {f.name: _wire(getattr(self, f.name)) for f in fields(self) if f.name not in _COMMON}


def _wire(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(_Typed):
    type: str = field(default="session_started", init=False)
    session_id: str
    program: str  # a program name, or "manual"
    parameters: dict[str, Any] | None = None  # a program's; None for a manual session
    planned_s: float | None = None
    person: str | None = None

    @property
    def details(self) -> dict[str, Any]:
        if self.parameters is None:
            return {"program": self.program, "person": self.person}
        return {
            "program": self.program,
            "parameters": self.parameters,
            "planned_s": self.planned_s,
            "person": self.person,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseStarted(_Typed):
    type: str = field(default="phase_started", init=False)
    session_id: str
    index: int
    label: str
    walk: WalkDirection
    belt: BeltDirection
    speed_kmh: float  # as reported: to 3 decimals
    incline_pct: float
    duration_s: float

    @classmethod
    def of(cls, ts: float, session_id: str, index: int, step: Step, label: str) -> PhaseStarted:
        return cls(
            ts=ts,
            session_id=session_id,
            index=index,
            label=label,
            walk=step.walk,
            belt=step.belt,
            speed_kmh=round(step.speed_kmh, 3),
            incline_pct=step.incline_pct,
            duration_s=step.duration_us / 1e6,
        )

    @property
    def details(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "phase": self.label,
            "walk": self.walk.value,
            "belt": self.belt.value,
            "speed_kmh": self.speed_kmh,
            "incline_pct": self.incline_pct,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CueGiven(_Typed):
    type: str = field(default="cue", init=False)
    session_id: str
    text: str
    step: str  # the step's name


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFinished(_Typed):
    type: str = field(default="session_finished", init=False)
    session_id: str
    program: str
    ended: Ending
    cause: str | None  # why it stopped; None when the program finished
    detail: str
    summary: SessionSummary
    person: str | None = None

    @property
    def details(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "person": self.person,
            "ended": self.ended,
            "cause": self.cause,
            "detail": self.detail,
            **self.summary.as_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EStopLatched(_Typed):
    type: str = field(default="estop", init=False)
    cause: EStopCause
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault(_Typed):
    type: str = field(default="fault", init=False)
    cause: str  # link_lost, or the daemon's storage
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopping(_Typed):
    type: str = field(default="stopping", init=False)
    reason: StopReason
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetDone(_Typed):
    type: str = field(default="reset", init=False)
    interlock_s: float  # starts are refused for this long


@dataclass(frozen=True, slots=True, kw_only=True)
class EStopInputChanged(_Typed):
    type: str = field(default="estop_input", init=False)
    health: InputHealth

    @property
    def details(self) -> dict[str, Any]:
        return {"input": self.health.name} | self.health.as_dict()
