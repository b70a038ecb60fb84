"""Interval programs as data: the TOML file format, as pydantic models (pure, no I/O)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

from treadctl.core.device import WalkDirection

MAX_PROGRAM_S = 4 * 3600
_DURATION = re.compile(
    r"^\s*(?:(?P<h>\d+(?:\.\d+)?)\s*h)?\s*(?:(?P<m>\d+(?:\.\d+)?)\s*m)?\s*(?:(?P<s>\d+(?:\.\d+)?)\s*s)?\s*$"
)


def parse_duration(value: object) -> object:
    """Seconds from 90, 90.5, "90", "90s", "1m30s", "3m", "1h15m"; anything else is left to fail."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        match = _DURATION.match(text)
        if match and any(match.groupdict().values()):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            return parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
        raise ValueError(f'not a duration: {value!r} (use seconds, or e.g. "90s", "1m30s", "3m")')
    return value


_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": MAX_PROGRAM_S},
            {
                "type": "string",
                "pattern": r"^\s*(\d+(\.\d+)?\s*h)?\s*(\d+(\.\d+)?\s*m)?\s*(\d+(\.\d+)?\s*s)?\s*$",
            },
        ],
        "description": 'Seconds (90), or a string such as "90s", "1m30s", "3m", "1h".',
    }
)
Duration = Annotated[
    float, BeforeValidator(parse_duration), Field(gt=0, le=MAX_PROGRAM_S), _DURATION_SCHEMA
]
OptionalDuration = Annotated[
    float, BeforeValidator(parse_duration), Field(ge=0, le=MAX_PROGRAM_S), _DURATION_SCHEMA
]


def format_duration(seconds: float) -> str:
    """1h 05m, 3m 20s, 45s, 2.5s: how durations are shown to people."""
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m" + (f" {s:02d}s" if s else "")
    if m:
        return f"{m}m {s:02d}s" if s else f"{m}m"
    return f"{s}s"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Plan(_Model):
    """How often the program is meant to run: the basis of adherence."""

    sessions_per_week: Annotated[int, Field(ge=1, le=14)]
    weeks: Annotated[int, Field(ge=1, le=104)]


class Parameter(_Model):
    """A per-session value a therapist sets when starting, e.g. a comfortable backward speed."""

    description: str
    unit: Literal["km/h"] = "km/h"
    default: Annotated[float, Field(gt=0)]
    """A clearly marked default: used when the session does not set the parameter."""
    min: Annotated[float, Field(gt=0)]
    max: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min <= self.default <= self.max:
            raise ValueError(
                f"default {self.default} must lie within min {self.min} and max {self.max}"
            )
        return self


class Phase(_Model):
    """One timed stretch at one walk direction and speed."""

    name: Annotated[str, Field(min_length=1, max_length=60)]
    duration: Duration
    """Seconds (90), or a string: "90s", "1m30s", "3m"."""
    walk: WalkDirection
    """Which way the person walks: forward or backward."""
    speed_kmh: Annotated[float, Field(ge=0, le=20)] | None = None
    """Belt speed in km/h; or use speed_fraction (and speed_of)."""
    speed_fraction: Annotated[float, Field(gt=0, le=2)] | None = None
    """Speed as a fraction of a per-session parameter, e.g. 0.8 of the comfortable speed."""
    speed_of: str | None = None
    """The parameter speed_fraction refers to; may be left out when the program has one."""
    incline_pct: Annotated[float, Field(ge=-5, le=30)] = 0.0
    ramp: OptionalDuration = 0.0
    """Time to reach this phase's speed; never faster than limits.max_accel_mps2 allows."""
    cue: Annotated[str, Field(max_length=200)] | None = None
    """Shown (and announced) when the phase starts."""

    @model_validator(mode="after")
    def _one_speed(self) -> Self:
        if (self.speed_kmh is None) == (self.speed_fraction is None):
            raise ValueError("give exactly one of speed_kmh and speed_fraction")
        if self.speed_of is not None and self.speed_fraction is None:
            raise ValueError("speed_of needs speed_fraction")
        return self


class Block(_Model):
    """Phases that repeat, e.g. 4 × (2 min backward, 1 min forward)."""

    name: Annotated[str, Field(min_length=1, max_length=60)]
    repeat: Annotated[int, Field(ge=1, le=100)]
    phases: Annotated[list[Phase], Field(min_length=1)]


def _item_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "block" if "repeat" in value or "phases" in value else "phase"
    return "block" if isinstance(value, Block) else "phase"


Item = Annotated[
    Annotated[Phase, Tag("phase")] | Annotated[Block, Tag("block")], Discriminator(_item_kind)
]


class Program(_Model):
    """A timed interval program, as written in a TOML file."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    """The short name used on the command line and over MQTT."""
    title: Annotated[str, Field(min_length=1, max_length=120)]
    description: str = ""
    source: str | None = None
    """Citation of the published protocol this program reproduces."""
    intended_use: str = ""
    plan: Plan | None = None
    parameters: dict[str, Parameter] = {}
    phases: Annotated[list[Item], Field(min_length=1)]

    @model_validator(mode="after")
    def _parameters_exist(self) -> Self:
        for number, _repeat, phase in self.leaf_phases():
            if phase.speed_fraction is None:
                continue
            ref = phase.speed_of
            if ref is None and len(self.parameters) != 1:
                raise ValueError(
                    f'phase {number} "{phase.name}": speed_fraction needs speed_of naming one of '
                    f"the parameters ({', '.join(self.parameters) or 'none declared'})"
                )
            if ref is not None and ref not in self.parameters:
                raise ValueError(f'phase {number} "{phase.name}": unknown parameter {ref!r}')
        return self

    def leaf_phases(self) -> list[tuple[int, int, Phase]]:
        """(phase number, block repeat count, phase) in file order; numbers start at 1."""
        out: list[tuple[int, int, Phase]] = []
        for item in self.phases:
            if isinstance(item, Block):
                base = len(out) + 1
                out.extend((base + i, item.repeat, p) for i, p in enumerate(item.phases))
            else:
                out.append((len(out) + 1, 1, item))
        return out

    def parameter_of(self, phase: Phase) -> str | None:
        if phase.speed_fraction is None:
            return None
        return phase.speed_of or next(iter(self.parameters))
