"""What a client may send the clinic service (CLI, web API): checked before anything changes.

Every error names the field (`limits.max_speed_backward_kmh: …`). A person's limits may not go
beyond the hard ceilings any treadmill is held to (config/models.py); looser than a particular
treadmill is fine, the daemon then keeps its own (docs/mqtt.md, People).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from treadctl.clinic.errors import FormError
from treadctl.clinic.views import ADVERSE_CATEGORIES
from treadctl.config.models import (
    CEILING_INCLINE_PCT,
    CEILING_SPEED_BACKWARD_KMH,
    CEILING_SPEED_FORWARD_KMH,
)
from treadctl.core.person import PERSON_ID

PersonId = Annotated[str, Field(pattern=f"^{PERSON_ID.pattern}$")]
Text = Annotated[str, Field(max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Number = Annotated[float, Field(allow_inf_nan=False)]
HEART_RATE_CEILING_BPM = 220


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LimitsForm(_Form):
    max_speed_backward_kmh: Annotated[float, Field(gt=0, le=CEILING_SPEED_BACKWARD_KMH)] | None = (
        None
    )
    max_speed_forward_kmh: Annotated[float, Field(gt=0, le=CEILING_SPEED_FORWARD_KMH)] | None = None
    max_incline_pct: Annotated[float, Field(ge=0, le=CEILING_INCLINE_PCT)] | None = None
    heart_rate_max_bpm: Annotated[int, Field(ge=60, le=HEART_RATE_CEILING_BPM)] | None = None

    def as_dict(self) -> dict[str, float]:
        return self.model_dump(exclude_none=True)


def _parameters(value: dict[str, float]) -> dict[str, float]:
    for key, number in value.items():
        if number <= 0:
            raise ValueError(f"{key} must be a positive number, not {number:g}")
    return value


class PersonForm(_Form):
    id: PersonId
    name: Name | None = None
    notes: Text = ""
    limits: LimitsForm = LimitsForm()
    parameters: dict[str, Number] = Field(default_factory=dict)

    _positive = field_validator("parameters")(_parameters)


class PersonEdit(_Form):
    """Only the fields given change; `name: null` removes the name."""

    name: Name | None = None
    notes: Text | None = None
    limits: LimitsForm | None = None
    parameters: dict[str, Number] | None = None

    _positive = field_validator("parameters")(_parameters)


class ProgressionForm(_Form):
    parameter: Annotated[str, Field(min_length=1, max_length=64)] = "comfortable_backward_kmh"
    step_pct: Annotated[float, Field(gt=0, le=25)] = 10.0
    step_back_pct: Annotated[float, Field(gt=0, le=50)] = 10.0
    pain_rise_max: Annotated[int, Field(ge=1, le=10)] = 2


class PrescriptionForm(_Form):
    person: PersonId
    program: Annotated[str, Field(min_length=1, max_length=64)]
    parameters: dict[str, Number] = Field(default_factory=dict)
    sessions_per_week: Annotated[int, Field(ge=1, le=14)]
    weeks: Annotated[int, Field(ge=1, le=104)]
    start_date: date
    progression: ProgressionForm | None = None

    _positive = field_validator("parameters")(_parameters)


class AdverseEventForm(_Form):
    category: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1, max_length=2000)]

    @field_validator("category")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ADVERSE_CATEGORIES:
            raise ValueError(f"one of {', '.join(ADVERSE_CATEGORIES)}")
        return value


class AnnotationForm(_Form):
    """Entered after a session; fields not given keep what was there."""

    pain_before: Annotated[int, Field(ge=0, le=10)] | None = None
    pain_after: Annotated[int, Field(ge=0, le=10)] | None = None
    exertion_borg: Annotated[int, Field(ge=6, le=20)] | None = None
    supervised_by: Name | None = None
    notes: Text | None = None
    adverse_events: list[AdverseEventForm] | None = None


class MeasureForm(_Form):
    person: PersonId
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    value: Number
    unit: Annotated[str, Field(max_length=16)] = ""
    measured_on: date
    notes: Text = ""


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def explain(exc: ValidationError) -> str:
    """One line per wrong field: `limits.max_speed_backward_kmh: Input should be …`."""
    return "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())


F = TypeVar("F", bound=_Form)


def unstorable(data: Any) -> str | None:
    """The first value in `data` (JSON-like) that a database cannot keep as it is, named
    `where: why`: NaN or infinity (JSON has no such numbers), a NUL character (PostgreSQL's
    text refuses it; SQLite would keep it, so the two refuse alike here)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where or 'body'}: Input should be a finite number"
        if isinstance(value, str) and "\x00" in value:
            return f"{where or 'body'}: NUL characters are not allowed"
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = list(value.items())
            stack.extend((where, key) for key in value)  # a key is named by its object
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        else:
            continue
        stack.extend((f"{where}.{key}" if where else str(key), v) for key, v in reversed(items))
    return None


def parse(form: type[F], data: Any) -> F:
    """`data` as `form`, or FormError naming every wrong field."""
    try:
        parsed = form.model_validate(data)
    except ValidationError as exc:
        raise FormError(explain(exc)) from None
    if (problem := unstorable(parsed.model_dump())) is not None:
        raise FormError(problem)
    return parsed


class PreSessionCheck(_Form):
    """What the therapist confirms on the dashboard before a start (the h/p/cosmos field safety
    notice: the fall-stop clip attached, someone beside the treadmill)."""

    pain_before: Annotated[int, Field(ge=0, le=10)]
    clip_attached: bool
    supervisor_present: bool

    @field_validator("clip_attached", "supervisor_present")
    @classmethod
    def _ticked(cls, value: bool) -> bool:
        if not value:
            raise ValueError("must be confirmed before a start")
        return value
