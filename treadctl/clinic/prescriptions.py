"""Prescriptions: a person + program + parameters + plan (+ a progression rule), and what a
start for a person resolves to.

A prescription is checked against the program (known, parameters within its range) and the
person's limits (no phase beyond them) before it is stored; the daemon checks again at the
start against its own limits, which may be tighter still.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from treadctl.clinic import convert
from treadctl.clinic.errors import ConflictError, FormError, NotFoundError
from treadctl.clinic.forms import PrescriptionForm
from treadctl.clinic.people import active_row
from treadctl.clinic.tables import PersonRow, PrescriptionRow
from treadctl.clinic.views import Prescription
from treadctl.config.models import (
    CEILING_INCLINE_PCT,
    CEILING_SPEED_BACKWARD_KMH,
    CEILING_SPEED_FORWARD_KMH,
    Settings,
)
from treadctl.core.person import PersonLimits, program_refusal
from treadctl.core.program import Program
from treadctl.core.safety import SafetyRules
from treadctl.programs.library import ProgramLibrary

log = structlog.get_logger("treadctl.clinic")

# The widest any treadmill may be configured: against these, only the person's limits refuse.
CEILING_RULES = SafetyRules(
    max_speed_forward_kmh=CEILING_SPEED_FORWARD_KMH,
    max_speed_backward_kmh=CEILING_SPEED_BACKWARD_KMH,
    max_incline_forward_pct=CEILING_INCLINE_PCT,
    max_incline_backward_pct=CEILING_INCLINE_PCT,
)


def programs_of(settings: Settings) -> dict[str, Program]:
    """The programs a prescription may name: the built-ins and `programs.directory`'s."""
    library = ProgramLibrary(settings.programs.directory)
    for problem in library.errors:
        log.warning("program file skipped", problem=problem)
    return {name: entry.program for name, entry in library.entries.items()}


def parameter_problems(program: Program, parameters: Mapping[str, float]) -> list[str]:
    problems = [
        f"parameters.{name}: {program.name} has no such parameter "
        f"(it has: {', '.join(program.parameters) or 'none'})"
        for name in sorted(set(parameters) - set(program.parameters))
    ]
    for name, value in parameters.items():
        spec = program.parameters.get(name)
        if spec is not None and not spec.min <= value <= spec.max:
            problems.append(
                f"parameters.{name}: {value:g} {spec.unit} is outside {spec.min:g}-{spec.max:g}"
            )
    return problems


def check_for_person(
    program: Program, parameters: Mapping[str, float], limits: Mapping[str, float]
) -> None:
    """FormError for a bad parameter, ConflictError for a program the limits forbid."""
    if problems := parameter_problems(program, parameters):
        raise FormError("; ".join(problems))
    refusal = program_refusal(program, parameters, PersonLimits.from_mapping(limits), CEILING_RULES)
    if refusal is not None:
        raise ConflictError(f"{program.name} with these parameters: {refusal[1]}")


def _program(programs: Mapping[str, Program], name: str) -> Program:
    program = programs.get(name)
    if program is None:
        raise FormError(f"program: unknown program {name!r} (known: {', '.join(sorted(programs))})")
    return program


def add_prescription(
    db: Session, form: PrescriptionForm, programs: Mapping[str, Program], *, now: datetime
) -> Prescription:
    """The new prescription becomes the person's active one; an earlier active one ends."""
    person = active_row(db, form.person)
    program = _program(programs, form.program)
    parameters = {**_saved(person, program), **form.parameters}
    check_for_person(program, parameters, person.limits)
    if form.progression is not None and form.progression.parameter not in program.parameters:
        raise FormError(
            f"progression.parameter: {program.name} has no parameter "
            f"{form.progression.parameter!r} (it has: {', '.join(program.parameters) or 'none'})"
        )
    for earlier in person.prescriptions:
        if earlier.ended is None:
            earlier.ended = now
    row = PrescriptionRow(
        person_id=person.id,
        program=program.name,
        parameters=parameters,
        sessions_per_week=form.sessions_per_week,
        weeks=form.weeks,
        start_date=form.start_date,
        progression=None if form.progression is None else form.progression.model_dump(),
        created=now,
        ended=None,
    )
    db.add(row)
    db.flush()
    return convert.prescription(row)


def _saved(person: PersonRow, program: Program) -> dict[str, float]:
    """The person's saved parameters that this program takes (e.g. a comfortable speed)."""
    return {k: float(v) for k, v in person.parameters.items() if k in program.parameters}


def row(db: Session, prescription_id: int) -> PrescriptionRow:
    found = db.get(PrescriptionRow, prescription_id)
    if found is None:
        raise NotFoundError(f"prescription {prescription_id}: no such prescription")
    return found


def get_prescription(db: Session, prescription_id: int) -> Prescription:
    return convert.prescription(row(db, prescription_id))


def list_prescriptions(db: Session, person_id: str | None = None) -> list[Prescription]:
    query = select(PrescriptionRow).order_by(PrescriptionRow.id)
    if person_id is not None:
        query = query.where(PrescriptionRow.person_id == person_id)
    return [convert.prescription(r) for r in db.scalars(query)]


def end_prescription(db: Session, prescription_id: int, *, now: datetime) -> Prescription:
    found = row(db, prescription_id)
    if found.ended is None:
        found.ended = now
    db.flush()
    return convert.prescription(found)


def active_prescription(db: Session, person_id: str) -> PrescriptionRow | None:
    query = (
        select(PrescriptionRow)
        .where(PrescriptionRow.person_id == person_id, PrescriptionRow.ended.is_(None))
        .order_by(PrescriptionRow.id.desc())
    )
    return db.scalars(query).first()


@dataclass(frozen=True, slots=True)
class StartPlan:
    """What a start for a person sends the daemon (cmd/start)."""

    person: str
    program: str
    parameters: dict[str, float]
    limits: dict[str, float]
    prescription_id: int | None = None
    plan: dict[str, int] = field(default_factory=dict)

    def payload(self) -> dict[str, object]:
        body: dict[str, object] = {
            "program": self.program,
            "parameters": self.parameters,
            "person": self.person,
        }
        if self.limits:
            body["limits"] = self.limits
        return body


def resolve_start(
    db: Session,
    person_id: str,
    programs: Mapping[str, Program],
    *,
    program: str | None = None,
    parameters: Mapping[str, float] | None = None,
) -> StartPlan:
    """The active prescription's program and parameters (or the program named, with the
    person's saved parameters), plus the person's limits. Unknown or archived person: refused."""
    person = active_row(db, person_id)
    prescription = active_prescription(db, person_id)
    if program is None:
        if prescription is None:
            raise ConflictError(
                f"person {person_id!r} has no active prescription; name a program to start"
            )
        chosen = _program(programs, prescription.program)
        values = {**prescription.parameters, **(parameters or {})}
        linked: PrescriptionRow | None = prescription
    else:
        chosen = _program(programs, program)
        linked = prescription if prescription and prescription.program == program else None
        prescribed = {} if linked is None else linked.parameters
        # the prescription's values over the saved ones; those given for this start over both
        values = {**_saved(person, chosen), **prescribed, **(parameters or {})}
    check_for_person(chosen, values, person.limits)
    return StartPlan(
        person=person.id,
        program=chosen.name,
        parameters={k: float(v) for k, v in values.items()},
        limits=dict(person.limits),
        prescription_id=None if linked is None else linked.id,
        plan={}
        if linked is None
        else {"sessions_per_week": linked.sessions_per_week, "weeks": linked.weeks},
    )
