"""A person's limits for one session: they can only tighten the treadmill's own (docs/mqtt.md,
People).

A start may name a person (a pseudonymous id) and carry their limits. The session runs on the
tighter of each limit and the device's; a limit looser than the device's is ignored, never an
error. A program or set-point beyond a limit the person tightened is refused with
`limit_exceeded`, naming the limit, before anything moves.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from treadctl.core.device import WalkDirection
from treadctl.core.program import Program
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import PhaseInstance, instances

PERSON_ID = re.compile(r"[a-z0-9-]{1,32}")
LIMIT_EXCEEDED = "limit_exceeded"
TOLERANCE = 1e-9

Refusal = tuple[str, str]


class PersonError(ValueError):
    """A person id or limit that cannot be used; the message names the field."""


def check_person_id(value: object) -> str:
    if not isinstance(value, str) or PERSON_ID.fullmatch(value) is None:
        raise PersonError("person: a pseudonymous id of 1-32 characters a-z, 0-9 and '-'")
    return value


@dataclass(frozen=True, slots=True)
class PersonLimits:
    """Each optional; None leaves the device's limit as it is."""

    max_speed_backward_kmh: float | None = None
    max_speed_forward_kmh: float | None = None
    max_incline_pct: float | None = None
    heart_rate_max_bpm: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PersonError(f"limits.{field.name}: a number")
            if not math.isfinite(value) or value <= 0:
                raise PersonError(f"limits.{field.name}: must be a positive number, not {value}")
        if self.heart_rate_max_bpm is not None and not isinstance(self.heart_rate_max_bpm, int):
            raise PersonError("limits.heart_rate_max_bpm: a whole number of beats per minute")

    @classmethod
    def from_mapping(cls, data: object) -> PersonLimits:
        """From a payload's `limits` object; unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise PersonError(
                "limits: an object of max_speed_backward_kmh, "
                "max_speed_forward_kmh, max_incline_pct, heart_rate_max_bpm"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(str(k) for k in data if k not in known):
            raise PersonError(
                f"limits: unknown key {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**{str(k): v for k, v in data.items()})

    def as_dict(self) -> dict[str, float | int]:
        return {
            f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None
        }


def _tighter(device: float, person: float | None) -> float:
    return device if person is None else min(device, person)


def session_rules(rules: SafetyRules, limits: PersonLimits) -> SafetyRules:
    """The device's rules with the person's limits where they are tighter."""
    hr = rules.heart_rate_max_bpm
    if limits.heart_rate_max_bpm is not None:
        hr = limits.heart_rate_max_bpm if hr is None else min(hr, limits.heart_rate_max_bpm)
    return dataclasses.replace(
        rules,
        max_speed_backward_kmh=_tighter(
            rules.max_speed_backward_kmh, limits.max_speed_backward_kmh
        ),
        max_speed_forward_kmh=_tighter(rules.max_speed_forward_kmh, limits.max_speed_forward_kmh),
        max_incline_backward_pct=_tighter(rules.max_incline_backward_pct, limits.max_incline_pct),
        max_incline_forward_pct=_tighter(rules.max_incline_forward_pct, limits.max_incline_pct),
        heart_rate_max_bpm=hr,
    )


def _num(value: float) -> str:
    return f"{value:g}"


def target_refusal(
    walk: WalkDirection,
    speed_kmh: float,
    incline_pct: float,
    *,
    limits: PersonLimits,
    rules: SafetyRules,
    what: str,
) -> Refusal | None:
    """A speed/incline beyond a limit the person tightened below the device's."""
    if walk is WalkDirection.BACKWARD:
        key, person, device = (
            "max_speed_backward_kmh",
            limits.max_speed_backward_kmh,
            rules.max_speed_backward_kmh,
        )
        icap = rules.max_incline_backward_pct
    else:
        key, person, device = (
            "max_speed_forward_kmh",
            limits.max_speed_forward_kmh,
            rules.max_speed_forward_kmh,
        )
        icap = rules.max_incline_forward_pct
    if person is not None and person < device and speed_kmh > person + TOLERANCE:
        return LIMIT_EXCEEDED, (
            f"{what}: {_num(speed_kmh)} km/h exceeds the person's limit {key} = {_num(person)} km/h"
        )
    pinc = limits.max_incline_pct
    if pinc is not None and pinc < icap and incline_pct > pinc + TOLERANCE:
        return LIMIT_EXCEEDED, (
            f"{what}: incline {_num(incline_pct)} % exceeds the person's limit "
            f"max_incline_pct = {_num(pinc)} %"
        )
    return None


def program_refusal(
    program: Program, parameters: Mapping[str, float], limits: PersonLimits, rules: SafetyRules
) -> Refusal | None:
    """The first phase of the program (parameters resolved) beyond the person's limits."""
    values = {name: parameters.get(name, p.default) for name, p in program.parameters.items()}
    phase: PhaseInstance
    for phase in instances(program, values):
        refusal = target_refusal(
            phase.walk,
            phase.speed_kmh,
            phase.incline_pct,
            limits=limits,
            rules=rules,
            what=phase.label,
        )
        if refusal is not None:
            return refusal
    return None


def combined(current: PersonLimits | None, more: PersonLimits) -> PersonLimits:
    """`current` tightened by `more`: the lower of each given limit (a set never loosens them)."""
    if current is None:
        return more

    def lower(a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else min(a, b)

    hr = lower(current.heart_rate_max_bpm, more.heart_rate_max_bpm)
    return PersonLimits(
        max_speed_backward_kmh=lower(current.max_speed_backward_kmh, more.max_speed_backward_kmh),
        max_speed_forward_kmh=lower(current.max_speed_forward_kmh, more.max_speed_forward_kmh),
        max_incline_pct=lower(current.max_incline_pct, more.max_incline_pct),
        heart_rate_max_bpm=None if hr is None else int(hr),
    )
