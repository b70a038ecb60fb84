"""What the clinic service reads back: plain, immutable values, free of the database layer.

The report, the exports, the progression rule and the web API take these; `clinic/repository.py`
builds them from the database. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Decision = Literal["increase", "hold", "step_back"]
StepStatus = Literal["pending", "approved", "rejected"]
DeviationKind = Literal["pause", "stop", "estop", "fault", "interrupted"]
ADVERSE_CATEGORIES = (
    "fall",
    "near_fall",
    "pain",
    "dizziness",
    "cardiovascular",
    "skin",
    "other",
)


@dataclass(frozen=True, slots=True)
class Person:
    id: str  # pseudonymous, the default display (core/person.PERSON_ID)
    name: str | None
    notes: str
    limits: dict[str, float]  # core/person.PersonLimits keys; only ever tighter than a device's
    parameters: dict[str, float]  # saved program parameters, e.g. a comfortable speed_kmh
    created: datetime
    archived: datetime | None = None

    @property
    def active(self) -> bool:
        return self.archived is None

    def display(self, *, names: bool = False) -> str:
        """The pseudonym, or `name (id)` when names were asked for and one is known."""
        return f"{self.name} ({self.id})" if names and self.name else self.id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ProgressionRule:
    """+step_pct a week on one parameter unless a symptom guard holds it or steps it back
    (docs/clinic.md, Progression). Always capped by the person's limits."""

    parameter: str = "comfortable_backward_kmh"
    step_pct: float = 10.0
    step_back_pct: float = 10.0
    pain_rise_max: int = 2  # a rise of this many points (after − before) holds progression

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Prescription:
    id: int
    person_id: str
    program: str
    parameters: dict[str, float]
    sessions_per_week: int
    weeks: int
    start_date: date
    progression: ProgressionRule | None
    created: datetime
    ended: datetime | None = None  # a prescription is active until ended

    @property
    def active(self) -> bool:
        return self.ended is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ProgressionStep:
    """A proposal of the rule for one week; it takes effect only once a therapist approves."""

    id: int
    prescription_id: int
    week_start: date  # the Monday of the week whose sessions were judged
    decision: Decision
    parameter: str
    old_value: float
    new_value: float
    reason: str
    status: StepStatus
    created: datetime
    decided_by: str | None = None
    decided: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AdverseEvent:
    category: str  # one of ADVERSE_CATEGORIES
    text: str


@dataclass(frozen=True, slots=True)
class Annotation:
    """Entered after a session by the therapist (or the person)."""

    pain_before: int | None = None  # 0-10 numeric rating scale
    pain_after: int | None = None
    exertion_borg: int | None = None  # Borg RPE, 6-20
    supervised_by: str | None = None
    notes: str = ""
    adverse_events: tuple[AdverseEvent, ...] = ()

    @property
    def pain_rise(self) -> int | None:
        if self.pain_before is None or self.pain_after is None:
            return None
        return self.pain_after - self.pain_before


@dataclass(frozen=True, slots=True)
class Deviation:
    """Where delivery departed from the prescription, and why (CERT/TIDieR)."""

    kind: DeviationKind
    at_s: float  # seconds after the session started (wall clock)
    cause: str  # e.g. the e-stop input's name, the fault's code, "operator"


@dataclass(frozen=True, slots=True)
class SessionDose:
    """One session as the clinic keeps it: prescribed against delivered."""

    id: str  # the daemon's session id
    device_id: str
    person_id: str | None
    program: str
    parameters: dict[str, Any]
    started: datetime
    ended: datetime | None
    ended_how: str | None
    end_cause: str | None
    planned_s: float | None  # prescribed time on the belt
    duration_s: float  # delivered time on the belt (pauses excluded)
    backward_s: float  # delivered time walking backward with the belt moving
    distance_m: float
    speed_backward_avg_kmh: float | None  # mean speed while walking backward
    speed_max_kmh: float
    heart_rate_avg_bpm: int | None
    heart_rate_peak_bpm: int | None
    prescription_id: int | None = None
    deviations: tuple[Deviation, ...] = ()
    annotation: Annotation | None = None

    @property
    def ended_early(self) -> bool:
        return self.ended_how is not None and self.ended_how != "finished"


@dataclass(frozen=True, slots=True)
class Measure:
    """An outcome measure taken on a day (TUG, 10 m walk, 6-minute walk, Berg, …)."""

    id: int
    person_id: str
    name: str
    value: float
    unit: str
    measured_on: date
    notes: str = ""


@dataclass(frozen=True, slots=True)
class AdherenceWeek:
    start: date  # its Monday
    sessions: int  # sessions that count toward the plan
    target: int
    complete: bool  # the week is over
    backward_min: float = 0.0  # delivered minutes walking backward that week

    @property
    def short(self) -> bool:
        return self.complete and self.sessions < self.target


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """Everything a report about one person shows."""

    person: Person
    prescriptions: tuple[Prescription, ...]
    sessions: tuple[SessionDose, ...]  # oldest first
    measures: tuple[Measure, ...]  # oldest first
    steps: tuple[ProgressionStep, ...]  # oldest first
    adherence: tuple[AdherenceWeek, ...]  # of the active (else latest) prescription
    generated: datetime
    devices: tuple[str, ...] = field(default=())

    @property
    def prescription(self) -> Prescription | None:
        """The active prescription, else the latest one."""
        active = [p for p in self.prescriptions if p.active]
        chosen = active or list(self.prescriptions)
        return chosen[-1] if chosen else None


Role = Literal["therapist", "admin"]
ROLES: tuple[Role, ...] = ("therapist", "admin")


@dataclass(frozen=True, slots=True)
class Account:
    """Someone who logs in to the dashboard (never their password or its hash)."""

    id: int
    username: str
    role: Role
    created: datetime
    disabled: datetime | None

    @property
    def admin(self) -> bool:
        return self.role == "admin"
