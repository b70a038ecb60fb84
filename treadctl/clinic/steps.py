"""Progression steps in the database: proposed each complete week, decided by a therapist.

Only an approved step changes the prescription's parameter, and only if the parameter is still
what the step started from (a therapist's edit in between wins: the step is refused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from treadctl.clinic import convert
from treadctl.clinic.errors import ClinicError, ConflictError, NotFoundError
from treadctl.clinic.prescriptions import check_for_person
from treadctl.clinic.prescriptions import row as prescription_row
from treadctl.clinic.progression import propose
from treadctl.clinic.tables import PrescriptionRow, SessionRow, StepRow
from treadctl.clinic.views import ProgressionStep
from treadctl.core.program import Program


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _allowed(
    program: Program, row: PrescriptionRow, parameter: str, limits: dict[str, float]
) -> Callable[[float], bool]:
    def check(value: float) -> bool:
        try:
            check_for_person(program, {**row.parameters, parameter: value}, limits)
        except ClinicError:
            return False
        return True

    return check


def propose_week(
    db: Session,
    prescription_id: int,
    week_start: date,
    programs: Mapping[str, Program],
    *,
    now: datetime,
) -> ProgressionStep:
    """Judge the week that starts on `week_start` (a Monday) and store a pending step."""
    row = prescription_row(db, prescription_id)
    if row.progression is None:
        raise ConflictError(f"prescription {prescription_id} has no progression rule")
    program = programs.get(row.program)
    if program is None:
        raise ConflictError(f"prescription {prescription_id}: program {row.program!r} unknown")
    rule = convert.rule(row.progression)
    assert rule is not None
    existing = db.scalars(
        select(StepRow).where(
            StepRow.prescription_id == prescription_id, StepRow.week_start == week_start
        )
    ).first()
    if existing is not None and existing.status != "pending":
        raise ConflictError(
            f"prescription {prescription_id}: the week of {week_start} was {existing.status} "
            "already"
        )
    begin = datetime.combine(week_start, datetime.min.time(), tzinfo=now.tzinfo)
    sessions = db.scalars(
        select(SessionRow)
        .where(
            SessionRow.prescription_id == prescription_id,
            SessionRow.started >= begin,
            SessionRow.started < begin + timedelta(weeks=1),
        )
        .order_by(SessionRow.started)
    ).all()
    spec = program.parameters.get(rule.parameter)
    current = float(row.parameters.get(rule.parameter, spec.default if spec else 0.0))
    proposal = propose(
        rule,
        current,
        [convert.session(s) for s in sessions],
        target=row.sessions_per_week,
        floor=spec.min if spec else 0.0,
        allowed=_allowed(program, row, rule.parameter, row.person.limits),
    )
    step = existing or StepRow(prescription_id=prescription_id, week_start=week_start)
    step.decision = proposal.decision
    step.parameter = rule.parameter
    step.old_value = current
    step.new_value = proposal.new_value
    step.reason = proposal.reason
    step.status = "pending"
    step.created = now
    if existing is None:
        db.add(step)
    try:
        db.flush()
    except IntegrityError as exc:  # the unique (prescription, week): proposed at the same moment
        raise ConflictError(
            f"prescription {prescription_id}: the week of {week_start} was proposed meanwhile "
            "by another process; nothing was changed"
        ) from exc
    return convert.step(step)


def propose_due(
    db: Session, programs: Mapping[str, Program], *, today: date, now: datetime
) -> list[ProgressionStep]:
    """A step for every complete week of every active prescription with a rule that has none
    yet; the week before the newest step is never judged again."""
    made: list[ProgressionStep] = []
    active = db.scalars(
        select(PrescriptionRow).where(
            PrescriptionRow.ended.is_(None), PrescriptionRow.progression.is_not(None)
        )
    ).all()
    for row in active:
        judged = {s.week_start for s in row.steps}
        week = monday(row.start_date)
        last = monday(row.start_date) + timedelta(weeks=row.weeks - 1)
        while week + timedelta(weeks=1) <= today and week <= last:
            if week not in judged:
                made.append(propose_week(db, row.id, week, programs, now=now))
            week += timedelta(weeks=1)
    return made


def _check_now(programs: Mapping[str, Program], row: PrescriptionRow, step: StepRow) -> None:
    program = programs.get(row.program)
    if program is None:
        raise ConflictError(f"step {step.id}: program {row.program!r} unknown")
    try:
        check_for_person(
            program, {**row.parameters, step.parameter: step.new_value}, row.person.limits
        )
    except ClinicError as exc:
        raise ConflictError(
            f"step {step.id}: {step.new_value:g} is beyond the person's limits now ({exc}); "
            "propose the week again"
        ) from None


def list_steps(
    db: Session, *, person_id: str | None = None, pending: bool = False
) -> list[ProgressionStep]:
    query = select(StepRow).join(PrescriptionRow).order_by(StepRow.week_start, StepRow.id)
    if person_id is not None:
        query = query.where(PrescriptionRow.person_id == person_id)
    if pending:
        query = query.where(StepRow.status == "pending")
    return [convert.step(s) for s in db.scalars(query)]


def decide(
    db: Session,
    step_id: int,
    *,
    approve: bool,
    by: str,
    now: datetime,
    programs: Mapping[str, Program] | None = None,
) -> ProgressionStep:
    """With `programs`, an approval is checked against the person's limits as they are now
    (they may have been tightened since the step was proposed)."""
    step = db.get(StepRow, step_id)
    if step is None:
        raise NotFoundError(f"step {step_id}: no such progression step")
    if step.status != "pending":
        raise ConflictError(f"step {step_id} was {step.status} already")
    prescription = prescription_row(db, step.prescription_id)
    if approve:
        if prescription.ended is not None:
            raise ConflictError(f"step {step_id}: its prescription has ended")
        current = prescription.parameters.get(step.parameter)
        if current is not None and abs(float(current) - step.old_value) > 1e-9:
            raise ConflictError(
                f"step {step_id}: {step.parameter} is {current:g} now, not the {step.old_value:g} "
                "it was proposed from; propose the week again"
            )
        if programs is not None:
            _check_now(programs, prescription, step)
        prescription.parameters = {**prescription.parameters, step.parameter: step.new_value}
    step.status = "approved" if approve else "rejected"
    step.decided_by = by
    step.decided = now
    db.flush()
    return convert.step(step)
