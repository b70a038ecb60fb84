"""What the store records and reads back: samples, sessions, phases, events."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from treadctl.core.state import Snapshot

EndedHow = Literal["finished", "stopped", "estop", "fault", "interrupted"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One telemetry tick of a session. Speeds are unsigned; `belt` says which way it ran."""

    ts: float  # Unix wall seconds
    elapsed_s: float  # session time without pauses
    speed_kmh: float  # actual belt speed
    belt: str  # forward | reverse
    walk: str  # forward | backward
    incline_pct: float
    target_kmh: float
    distance_m: float
    heart_rate_bpm: int | None
    phase_index: int | None
    mode: str  # the controller's mode: running, paused, stopping, …


SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Sample))


def sample_from_snapshot(snapshot: Snapshot) -> Sample:
    """The sample to record for one controller snapshot."""
    return Sample(
        ts=snapshot.ts,
        elapsed_s=snapshot.elapsed_s,
        speed_kmh=abs(snapshot.actual.speed_kmh),
        belt=snapshot.actual.belt.value,
        walk=snapshot.actual.walk.value,
        incline_pct=snapshot.actual.incline_pct,
        target_kmh=abs(snapshot.target.speed_kmh),
        distance_m=snapshot.distance_m,
        heart_rate_bpm=snapshot.heart_rate_bpm,
        phase_index=snapshot.phase_index,
        mode=snapshot.mode.value,
    )


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    device_id: str
    driver: str
    program: str  # a program name, or "manual"
    parameters: dict[str, Any]
    plan_sessions_per_week: int | None
    plan_weeks: int | None
    planned_s: float | None
    started: float
    ended: float | None = None  # the rest is None while the session runs
    ended_how: str | None = None
    end_cause: str | None = None
    end_detail: str | None = None
    summary: dict[str, Any] | None = None
    person: str | None = None  # the pseudonymous id who walked (core/person.py), never a name

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> SessionRecord:
        values = list(row)
        values[4] = json.loads(values[4])
        values[13] = None if values[13] is None else json.loads(values[13])
        return cls(*values)

    @property
    def duration_s(self) -> float | None:
        """Time on the belt (pauses excluded) when recorded, else wall time start to end."""
        if self.summary and isinstance(self.summary.get("duration_s"), int | float):
            return float(self.summary["duration_s"])
        return None if self.ended is None else self.ended - self.started

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SESSION_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SessionRecord))


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    index: int
    label: str
    walk: str
    belt: str
    speed_kmh: float
    incline_pct: float
    planned_s: float | None
    started: float
    ended: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EventRecord:
    ts: float
    type: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SessionDetail:
    session: SessionRecord
    phases: list[PhaseRecord]
    events: list[EventRecord]
