"""Reading the clinic's records back: one session, a person's sessions, their whole record
(the report's input) and their adherence week by week."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from treadctl.clinic import convert
from treadctl.clinic.annotations import session_row
from treadctl.clinic.people import get_person, list_measures
from treadctl.clinic.prescriptions import list_prescriptions
from treadctl.clinic.steps import list_steps, monday
from treadctl.clinic.tables import SessionRow
from treadctl.clinic.views import AdherenceWeek, PersonRecord, Prescription, SessionDose

MIN_FRACTION_OF_PLANNED = 0.5  # as the daemon's own adherence (store/adherence.py)


def get_session(db: Session, session_id: str) -> SessionDose:
    return convert.session(session_row(db, session_id))


def list_sessions(
    db: Session, *, person_id: str | None = None, device_id: str | None = None
) -> list[SessionDose]:
    query = select(SessionRow).order_by(SessionRow.started)
    if person_id is not None:
        query = query.where(SessionRow.person_id == person_id)
    if device_id is not None:
        query = query.where(SessionRow.device_id == device_id)
    return [convert.session(r) for r in db.scalars(query)]


def counts(session: SessionDose) -> bool:
    """Finished, or at least half the planned time on the belt."""
    if session.ended_how == "finished":
        return True
    return bool(
        session.planned_s and session.duration_s >= MIN_FRACTION_OF_PLANNED * session.planned_s
    )


def adherence(
    prescription: Prescription, sessions: Sequence[SessionDose], *, today: date
) -> tuple[AdherenceWeek, ...]:
    """The plan's weeks from its start date up to this week; sessions of that prescription."""
    mine = [s for s in sessions if s.prescription_id == prescription.id]
    first = monday(prescription.start_date)
    current = monday(today)
    weeks: list[AdherenceWeek] = []
    for i in range(prescription.weeks):
        start = first + timedelta(weeks=i)
        if start > current:
            break
        end = start + timedelta(weeks=1)
        week = [s for s in mine if start <= s.started.date() < end]
        weeks.append(
            AdherenceWeek(
                start=start,
                sessions=sum(counts(s) for s in week),
                target=prescription.sessions_per_week,
                complete=start < current,
                backward_min=round(sum(s.backward_s for s in week) / 60, 1),
            )
        )
    return tuple(weeks)


def person_record(db: Session, person_id: str, *, now: datetime) -> PersonRecord:
    person = get_person(db, person_id)
    prescriptions = tuple(list_prescriptions(db, person_id))
    sessions = tuple(list_sessions(db, person_id=person_id))
    record = PersonRecord(
        person=person,
        prescriptions=prescriptions,
        sessions=sessions,
        measures=tuple(list_measures(db, person_id)),
        steps=tuple(list_steps(db, person_id=person_id)),
        adherence=(),
        generated=now,
        devices=tuple(sorted({s.device_id for s in sessions})),
    )
    chosen = record.prescription
    if chosen is None:
        return record
    return replace(record, adherence=adherence(chosen, sessions, today=now.date()))
