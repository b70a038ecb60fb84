"""Rows of `clinic/tables.py` as the plain values of `clinic/views.py`."""

from __future__ import annotations

from typing import Any

from treadctl.clinic.tables import (
    AccountRow,
    AnnotationRow,
    MeasureRow,
    PersonRow,
    PrescriptionRow,
    SessionRow,
    StepRow,
)
from treadctl.clinic.views import (
    Account,
    AdverseEvent,
    Annotation,
    Deviation,
    Measure,
    Person,
    Prescription,
    ProgressionRule,
    ProgressionStep,
    SessionDose,
)


def account(row: AccountRow) -> Account:
    return Account(
        row.id,
        row.username,
        "admin" if row.role == "admin" else "therapist",
        row.created,
        row.disabled,
    )


def person(row: PersonRow) -> Person:
    return Person(
        id=row.id,
        name=row.name,
        notes=row.notes,
        limits=dict(row.limits),
        parameters=dict(row.parameters),
        created=row.created,
        archived=row.archived,
    )


def rule(data: dict[str, Any] | None) -> ProgressionRule | None:
    return None if data is None else ProgressionRule(**data)


def prescription(row: PrescriptionRow) -> Prescription:
    return Prescription(
        id=row.id,
        person_id=row.person_id,
        program=row.program,
        parameters=dict(row.parameters),
        sessions_per_week=row.sessions_per_week,
        weeks=row.weeks,
        start_date=row.start_date,
        progression=rule(row.progression),
        created=row.created,
        ended=row.ended,
    )


def step(row: StepRow) -> ProgressionStep:
    return ProgressionStep(
        id=row.id,
        prescription_id=row.prescription_id,
        week_start=row.week_start,
        decision=row.decision,  # type: ignore[arg-type]  # CHECK constraint keeps it one of three
        parameter=row.parameter,
        old_value=row.old_value,
        new_value=row.new_value,
        reason=row.reason,
        status=row.status,  # type: ignore[arg-type]  # likewise
        created=row.created,
        decided_by=row.decided_by,
        decided=row.decided,
    )


def annotation(row: AnnotationRow | None) -> Annotation | None:
    if row is None:
        return None
    return Annotation(
        pain_before=row.pain_before,
        pain_after=row.pain_after,
        exertion_borg=row.exertion_borg,
        supervised_by=row.supervised_by,
        notes=row.notes,
        adverse_events=tuple(AdverseEvent(e["category"], e["text"]) for e in row.adverse_events),
    )


def session(row: SessionRow) -> SessionDose:
    return SessionDose(
        id=row.id,
        device_id=row.device_id,
        person_id=row.person_id,
        program=row.program,
        parameters=dict(row.parameters),
        started=row.started,
        ended=row.ended,
        ended_how=row.ended_how,
        end_cause=row.end_cause,
        planned_s=row.planned_s,
        duration_s=row.duration_s,
        backward_s=row.backward_s,
        distance_m=row.distance_m,
        speed_backward_avg_kmh=row.speed_backward_avg_kmh,
        speed_max_kmh=row.speed_max_kmh,
        heart_rate_avg_bpm=row.heart_rate_avg_bpm,
        heart_rate_peak_bpm=row.heart_rate_peak_bpm,
        prescription_id=row.prescription_id,
        deviations=tuple(Deviation(d["kind"], d["at_s"], d["cause"]) for d in row.deviations),
        annotation=annotation(row.annotation),
    )


def measure(row: MeasureRow) -> Measure:
    return Measure(
        id=row.id,
        person_id=row.person_id,
        name=row.name,
        value=row.value,
        unit=row.unit,
        measured_on=row.measured_on,
        notes=row.notes,
    )
