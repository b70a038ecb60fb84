"""People and their outcome measures: add, read, edit, archive, delete for good.

Each function works inside the caller's transaction (`Database.session()`), so a failure
changes nothing. `now` is passed in: the clinic's clock is injected like the daemon's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from treadctl.clinic import convert
from treadctl.clinic.errors import ConflictError, NotFoundError
from treadctl.clinic.forms import MeasureForm, PersonEdit, PersonForm
from treadctl.clinic.tables import CommandRow, MeasureRow, PersonRow, SessionRow
from treadctl.clinic.views import Measure, Person


def _row(db: Session, person_id: str) -> PersonRow:
    row = db.get(PersonRow, person_id)
    if row is None:
        raise NotFoundError(f"person {person_id!r}: no such person")
    return row


def active_row(db: Session, person_id: str) -> PersonRow:
    """The person, refused when archived: nothing new is done for an archived person."""
    row = _row(db, person_id)
    if row.archived is not None:
        raise ConflictError(
            f"person {person_id!r} is archived (since {row.archived:%Y-%m-%d}); "
            "restore them with `treadctl people edit --restore` first"
        )
    return row


def add_person(db: Session, form: PersonForm, *, now: datetime) -> Person:
    if db.get(PersonRow, form.id) is not None:
        raise ConflictError(f"person {form.id!r} exists already")
    row = PersonRow(
        id=form.id,
        name=form.name,
        notes=form.notes,
        limits=form.limits.as_dict(),
        parameters=dict(form.parameters),
        created=now,
        archived=None,
    )
    db.add(row)
    db.flush()
    return convert.person(row)


def get_person(db: Session, person_id: str) -> Person:
    return convert.person(_row(db, person_id))


def list_people(db: Session, *, archived: bool = False) -> list[Person]:
    """Active people by id; with `archived`, everyone."""
    query = select(PersonRow).order_by(PersonRow.id)
    if not archived:
        query = query.where(PersonRow.archived.is_(None))
    return [convert.person(r) for r in db.scalars(query)]


def edit_person(db: Session, person_id: str, edit: PersonEdit, *, restore: bool = False) -> Person:
    row = _row(db, person_id)
    given = edit.model_fields_set
    if "name" in given:
        row.name = edit.name
    if edit.notes is not None:
        row.notes = edit.notes
    if edit.limits is not None:
        row.limits = edit.limits.as_dict()
    if edit.parameters is not None:
        row.parameters = dict(edit.parameters)
    if restore:
        row.archived = None
    db.flush()
    return convert.person(row)


def archive_person(db: Session, person_id: str, *, now: datetime) -> Person:
    """No new sessions or prescriptions; their records stay. Active prescriptions end."""
    row = _row(db, person_id)
    if row.archived is None:
        row.archived = now
    for prescription in row.prescriptions:
        if prescription.ended is None:
            prescription.ended = now
    db.flush()
    return convert.person(row)


@dataclass(frozen=True, slots=True)
class Deleted:
    person: str
    sessions: int
    prescriptions: int
    measures: int


def delete_person(db: Session, person_id: str) -> Deleted:
    """The person and everything about them, for good: prescriptions, progression steps,
    measures, the clinic's copies of their sessions with annotations, and the log of the
    starts sent for them (with their pre-session checks). The daemons keep
    their own records (docs/clinic.md, Deleting a person)."""
    row = _row(db, person_id)
    sessions = db.scalar(
        select(func.count()).select_from(SessionRow).where(SessionRow.person_id == person_id)
    )
    counts = Deleted(person_id, int(sessions or 0), len(row.prescriptions), len(row.measures))
    db.execute(delete(SessionRow).where(SessionRow.person_id == person_id))
    db.execute(delete(CommandRow).where(CommandRow.person_id == person_id))  # starts, checks
    db.delete(row)
    db.flush()
    return counts


def add_measure(db: Session, form: MeasureForm) -> Measure:
    active_row(db, form.person)
    row = MeasureRow(
        person_id=form.person,
        name=form.name,
        value=form.value,
        unit=form.unit,
        measured_on=form.measured_on,
        notes=form.notes,
    )
    db.add(row)
    db.flush()
    return convert.measure(row)


def list_measures(db: Session, person_id: str) -> list[Measure]:
    _row(db, person_id)
    query = (
        select(MeasureRow)
        .where(MeasureRow.person_id == person_id)
        .order_by(MeasureRow.measured_on, MeasureRow.id)
    )
    return [convert.measure(r) for r in db.scalars(query)]
