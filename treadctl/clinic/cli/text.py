"""The clinic's values as the lines the commands print (people show, prescriptions, steps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadctl.clinic.cli.common import local_day, local_minute, numbers

if TYPE_CHECKING:
    from treadctl.clinic.views import (
        AdherenceWeek,
        Annotation,
        Measure,
        Prescription,
        ProgressionRule,
        ProgressionStep,
        SessionDose,
    )

SESSION_ID_SHOWN = 12  # enough of a session id to be unique; the commands take a prefix


def rule(value: ProgressionRule | None) -> str:
    if value is None:
        return "no progression rule"
    return (
        f"progression +{value.step_pct:g} % a week on {value.parameter} (hold if pain rises "
        f"{value.pain_rise_max}+ points or a session ends early, step back "
        f"{value.step_back_pct:g} % after an adverse event); each step needs a therapist's approval"
    )


def prescription(p: Prescription) -> str:
    status = "active" if p.active else f"ended {local_day(p.ended)}" if p.ended else "ended"
    return (
        f"prescription {p.id}: {p.person_id}, {p.program} {numbers(p.parameters)}, "
        f"{p.sessions_per_week}/week x {p.weeks} weeks from {p.start_date}, {status}"
    )


def step(s: ProgressionStep) -> str:
    change = (
        f"{s.parameter} {s.old_value:g} -> {s.new_value:g}"
        if s.new_value != s.old_value
        else f"{s.parameter} stays {s.old_value:g}"
    )
    status = s.status if s.decided_by is None else f"{s.status} by {s.decided_by}"
    return (
        f"step {s.id}: prescription {s.prescription_id}, week of {s.week_start}: "
        f"{s.decision} {change} ({s.reason}) [{status}]"
    )


def week(w: AdherenceWeek) -> str:
    state = "short" if w.short else "done" if w.complete else "this week"
    return (
        f"week of {w.start}: {w.sessions}/{w.target} sessions, {w.backward_min:g} min backward "
        f"({state})"
    )


def measure(m: Measure) -> str:
    unit = f" {m.unit}" if m.unit else ""
    notes = f"  {m.notes}" if m.notes else ""
    return f"{m.measured_on}  {m.name:<14} {m.value:g}{unit}{notes}"


def ended(s: SessionDose) -> str:
    how = s.ended_how or "open"
    return f"{how} ({s.end_cause})" if s.end_cause and how != "finished" else how


def session_header() -> str:
    return (
        f"{'id':<{SESSION_ID_SHOWN}}  {'started':<16}  {'device':<12} {'program':<22} "
        f"{'walked':>7} {'backward':>8}  ended"
    )


def session(s: SessionDose) -> str:
    return (
        f"{s.id[:SESSION_ID_SHOWN]:<{SESSION_ID_SHOWN}}  {local_minute(s.started):<16}  "
        f"{s.device_id[:12]:<12} {s.program[:22]:<22} {s.duration_s / 60:>5.1f} m "
        f"{s.backward_s / 60:>6.1f} m  {ended(s)}"
    )


def annotation(a: Annotation) -> list[str]:
    def value(x: object) -> str:
        return "-" if x is None else str(x)

    pain = f"pain before/after: {value(a.pain_before)}/{value(a.pain_after)}"
    lines = [f"{pain}, Borg: {value(a.exertion_borg)}, supervised by: {value(a.supervised_by)}"]
    if a.notes:
        lines.append(f"notes: {a.notes}")
    lines.extend(f"adverse event: {e.category}: {e.text}" for e in a.adverse_events)
    return lines
