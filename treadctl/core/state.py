"""What the controller tells the world: state snapshots and events (docs/mqtt.md field names)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from treadctl.core.device import BeltDirection, WalkDirection


class Mode(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    ESTOP = "estop"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Motion:
    speed_kmh: float
    walk: WalkDirection
    belt: BeltDirection
    incline_pct: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "speed_kmh": round(self.speed_kmh, 3),
            "walk": self.walk.value,
            "belt": self.belt.value,
            "incline_pct": round(self.incline_pct, 2),
        }


@dataclass(frozen=True, slots=True)
class InputHealth:
    """One dedicated e-stop input as the world sees it (docs/estop.md)."""

    name: str
    kind: str  # heartbeat | modem-lines
    status: str  # ok, waiting, pressed, silent, garbage, miswired, disconnected
    detail: str

    @property
    def healthy(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "healthy": self.healthy,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The controller's state after a tick."""

    ts: float  # wall clock (Unix seconds)
    mode: Mode
    program: str | None
    phase: str | None
    phase_index: int | None
    phase_remaining_s: float | None
    session_id: str | None
    target: Motion
    actual: Motion
    fault: str | None
    distance_m: float
    elapsed_s: float
    heart_rate_bpm: int | None
    estop_inputs: tuple[InputHealth, ...] = ()
    person: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """The retained `state` payload."""
        return {
            "mode": self.mode.value,
            "program": self.program,
            "person": self.person,
            "phase": self.phase,
            "session_id": self.session_id,
            "target": self.target.as_dict(),
            "actual": self.actual.as_dict(),
            "fault": self.fault,
            "estop_inputs": {i.name: i.as_dict() for i in self.estop_inputs},
        }

    def state_key(self) -> tuple[object, ...]:
        """What `state_dict` is made of, unrounded: a tick that changed none of it changed no
        payload, and needs none built to compare (most ticks: mqtt/outbox.py)."""
        return (
            self.mode,
            self.program,
            self.person,
            self.phase,
            self.session_id,
            self.target,
            self.actual,
            self.fault,
            self.estop_inputs,
        )

    def telemetry_dict(self) -> dict[str, Any]:
        """The `telemetry` payload."""
        return {
            "ts": round(self.ts, 3),
            "speed_kmh": round(self.actual.speed_kmh, 3),
            "belt": self.actual.belt.value,
            "incline_pct": round(self.actual.incline_pct, 2),
            "distance_m": round(self.distance_m, 2),
            "elapsed_s": round(self.elapsed_s, 2),
            "phase_index": self.phase_index,
            "phase_remaining_s": None
            if self.phase_remaining_s is None
            else round(self.phase_remaining_s, 2),
            "heart_rate_bpm": self.heart_rate_bpm,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, as the `events` topic carries it (docs/mqtt.md).

    `type` is one of session_started, phase_started, cue, session_finished, estop, fault,
    reset, paused, resumed, skipped, stopping, reversal_deferred, countdown, heart_rate_lost,
    broker_lost, link_restored, estop_input (and the daemon's config_error, storage_recovered).
    This generic form carries its fields in `data`; the events with structure have their own
    types (core/events.py), subclasses that build `details` from typed fields.
    """

    type: str
    ts: float
    session_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def details(self) -> dict[str, Any]:
        """The event's own fields, as on the wire."""
        return self.data

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "ts": round(self.ts, 6),
            "session_id": self.session_id,
            **self.details,
        }
