"""The progression rule: one week's sessions judged, the next week's value proposed.

+step_pct on one parameter a week, unless the symptom guard says otherwise (the EPIPHA-KNEE
template: no progression when pain rose by the rule's points or a session ended early; a step
back after an adverse event or pain rising in two sessions). Always capped by the program's
range and the person's limits. Pure: the caller supplies the week and the cap; a proposal
changes nothing until a therapist approves it (`clinic/steps.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from treadctl.clinic.views import Decision, ProgressionRule, SessionDose

RESOLUTION = 0.1  # proposals move in steps a treadmill display shows (km/h)


@dataclass(frozen=True, slots=True)
class Proposal:
    decision: Decision
    new_value: float
    reason: str


def _round(value: float) -> float:
    return round(round(value / RESOLUTION) * RESOLUTION, 3)


def _round_down(value: float) -> float:
    """A step back rounds down: rounded to the nearest, a small one could end above the start."""
    return round(math.floor(value / RESOLUTION + 1e-6) * RESOLUTION, 3)


def _day(session: SessionDose) -> str:
    return f"{session.started:%a %d %b}"


def propose(
    rule: ProgressionRule,
    current: float,
    week: Sequence[SessionDose],
    *,
    target: int,
    floor: float,
    allowed: Callable[[float], bool],
) -> Proposal:
    """`week`: the sessions of the prescription that week; `target`: sessions a week the plan
    asks for; `floor`: the parameter's minimum; `allowed(value)`: the value keeps every phase
    within the program's range and the person's limits."""
    proposal = _judge(rule, current, week, target=target, floor=floor, allowed=allowed)
    if proposal.new_value <= floor or allowed(proposal.new_value):
        return proposal
    # limits tightened since the value was set: a hold (or a short step back) would keep it
    # beyond them, so step down to what they allow
    value = proposal.new_value
    while value > floor and not allowed(value):
        value = max(floor, _round(value - RESOLUTION))
    return Proposal(
        "step_back",
        value,
        f"{proposal.reason}; {proposal.new_value:g} is beyond the person's limits: "
        f"step back to {value:g}",
    )


def _judge(
    rule: ProgressionRule,
    current: float,
    week: Sequence[SessionDose],
    *,
    target: int,
    floor: float,
    allowed: Callable[[float], bool],
) -> Proposal:
    adverse = [(s, e) for s in week if s.annotation for e in s.annotation.adverse_events]
    rises = [
        (s, rise)
        for s in week
        if s.annotation and (rise := s.annotation.pain_rise) is not None
        if rise >= rule.pain_rise_max
    ]
    if adverse or len(rises) >= 2:
        value = max(floor, _round_down(current * (1 - rule.step_back_pct / 100)))
        if adverse:
            session, event = adverse[0]
            why = f"adverse event ({event.category}) on {_day(session)}"
        else:
            why = f"pain rose by {rule.pain_rise_max}+ points in {len(rises)} sessions"
        return Proposal("step_back", value, f"{why}: step back {rule.step_back_pct:g} %")
    if rises:
        session, rise = rises[0]
        return Proposal("hold", current, f"pain rose by {rise} points on {_day(session)}: hold")
    if early := [s for s in week if s.ended_early]:
        s = early[0]
        how = s.ended_how if not s.end_cause else f"{s.ended_how}, {s.end_cause}"
        return Proposal("hold", current, f"the session on {_day(s)} ended early ({how}): hold")
    if len(week) < target:
        return Proposal("hold", current, f"{len(week)} of {target} sessions that week: hold")
    wanted = _round(current * (1 + rule.step_pct / 100))
    value = wanted
    while value > current and not allowed(value):
        value = _round(value - RESOLUTION)
    if value <= current:
        return Proposal("hold", current, "at the person's limit or the program's maximum: hold")
    capped = "" if value == wanted else f", capped at {value:g} by the limits"
    return Proposal(
        "increase",
        value,
        f"all {len(week)} sessions done, no symptom: +{rule.step_pct:g} %{capped}",
    )
