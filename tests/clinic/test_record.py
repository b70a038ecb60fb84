"""A person's record read back (clinic/record.py): sessions, measures, steps, adherence week by
week; and a person deleted for good with everything about them (clinic/people.delete_person);
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from clinic.documents import session_document
from treadctl.clinic import accounts
from treadctl.clinic.annotations import annotate
from treadctl.clinic.audit import log_command
from treadctl.clinic.database import Database, open_database
from treadctl.clinic.errors import NotFoundError
from treadctl.clinic.forms import AnnotationForm, MeasureForm, PersonForm, PrescriptionForm, parse
from treadctl.clinic.ingest import store_record
from treadctl.clinic.people import Deleted, add_measure, add_person, delete_person, get_person
from treadctl.clinic.prescriptions import add_prescription
from treadctl.clinic.record import adherence, counts, get_session, list_sessions, person_record
from treadctl.clinic.steps import propose_due
from treadctl.clinic.tables import (
    AccountRow,
    AnnotationRow,
    Base,
    CommandRow,
    LoginRow,
    MeasureRow,
    PersonRow,
    PrescriptionRow,
    SessionRow,
    StepRow,
)
from treadctl.clinic.views import AdherenceWeek, SessionDose
from treadctl.programs.library import builtin_programs

PROGRAMS = {name: entry.program for name, entry in builtin_programs().items()}
PROGRAM = "alghadir2019-knee-oa"
START = date(2026, 12, 2)  # a Wednesday: the plan's weeks are Monday to Sunday around it
WEEK_1 = date(2026, 11, 30)
WEEK_2 = WEEK_1 + timedelta(weeks=1)
WEEK_3 = WEEK_1 + timedelta(weeks=2)
CREATED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 16, 18, 0, tzinfo=UTC)  # Wednesday of the third week


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


def _person(database: Database, person: str, *, progression: bool = False) -> int:
    form = {
        "person": person,
        "program": PROGRAM,
        "sessions_per_week": 3,
        "weeks": 4,
        "start_date": START.isoformat(),
        "progression": {} if progression else None,
    }
    with database.session() as db:
        add_person(db, parse(PersonForm, {"id": person, "name": person.upper()}), now=CREATED)
        return add_prescription(db, parse(PrescriptionForm, form), PROGRAMS, now=CREATED).id


def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)


def _walk(database: Database, sid: str, day: date, **more: Any) -> None:
    with database.session() as db:
        store_record(db, session_document(sid, started=_at(day), **more), now=NOW)


def _measure(database: Database, person: str, name: str, value: float, on: date) -> None:
    form = {"person": person, "name": name, "value": value, "unit": "s", "measured_on": on}
    with database.session() as db:
        add_measure(db, parse(MeasureForm, form))


def _mrs_k(database: Database) -> int:
    """Three weeks of a 3-a-week plan: 3 counted, then 1 of 2, then 1 so far."""
    prescription = _person(database, "mrs-k", progression=True)
    _walk(database, "w1-a", WEEK_1 + timedelta(days=2))  # finished
    _walk(database, "w1-b", WEEK_1 + timedelta(days=4), device="tm-2")
    # stopped after 70 of 120 s: more than half, it counts
    w1c = session_document("w1-c", started=_at(WEEK_1 + timedelta(days=6)), duration_s=70)
    w1c["session"].update(planned_s=120.0, ended_how="stopped")
    with database.session() as db:
        store_record(db, w1c, now=NOW)
    _walk(database, "w2-a", WEEK_2, ended_how="finished")
    # an e-stop after 50 of 120 s: less than half, it does not count
    short = session_document("w2-b", started=_at(WEEK_2 + timedelta(days=2)), duration_s=50)
    short["session"].update(planned_s=120.0, ended_how="estop", end_cause="command")
    with database.session() as db:
        store_record(db, short, now=NOW)
        annotate(db, "w2-b", parse(AnnotationForm, {"pain_before": 2, "pain_after": 6}), now=NOW)
    _walk(database, "w3-a", WEEK_3)
    _walk(database, "before", WEEK_1 - timedelta(days=10))  # before the prescription: unlinked
    _measure(database, "mrs-k", "tug", 14.1, WEEK_1)
    _measure(database, "mrs-k", "tug", 12.9, WEEK_3)
    with database.session() as db:
        propose_due(db, PROGRAMS, today=NOW.date(), now=NOW)
    return prescription


def test_adherence_counts_each_week_of_the_plan_from_its_start(database: Database) -> None:
    _mrs_k(database)
    with database.session() as db:
        record = person_record(db, "mrs-k", now=NOW)
    assert record.adherence == (
        AdherenceWeek(start=WEEK_1, sessions=3, target=3, complete=True, backward_min=5.1),
        AdherenceWeek(start=WEEK_2, sessions=1, target=3, complete=True, backward_min=2.8),
        AdherenceWeek(start=WEEK_3, sessions=1, target=3, complete=False, backward_min=2.0),
    )
    assert [w.short for w in record.adherence] == [False, True, False]


@pytest.mark.parametrize(
    ("ended_how", "duration_s", "planned_s", "counted"),
    [
        ("finished", 10.0, 600.0, True),  # a program that finished early on its own: done
        ("stopped", 300.0, 600.0, True),  # exactly half
        ("stopped", 299.0, 600.0, False),
        ("estop", 599.0, 600.0, True),
        ("interrupted", 400.0, 600.0, True),
        ("stopped", 3600.0, None, False),  # a manual session has no plan to measure against
    ],
)
def test_a_session_counts_when_finished_or_at_least_half_the_planned_time(
    ended_how: str, duration_s: float, planned_s: float | None, *, counted: bool
) -> None:
    session = SessionDose(
        id="s",
        device_id="tm-1",
        person_id="mrs-k",
        program=PROGRAM,
        parameters={},
        started=_at(WEEK_1),
        ended=_at(WEEK_1, 11),
        ended_how=ended_how,
        end_cause=None,
        planned_s=planned_s,
        duration_s=duration_s,
        backward_s=duration_s,
        distance_m=100.0,
        speed_backward_avg_kmh=1.2,
        speed_max_kmh=1.2,
        heart_rate_avg_bpm=None,
        heart_rate_peak_bpm=None,
    )
    assert counts(session) is counted


def test_adherence_before_the_start_and_after_the_plan(database: Database) -> None:
    _mrs_k(database)
    with database.session() as db:
        sessions = list_sessions(db, person_id="mrs-k")
        prescription = person_record(db, "mrs-k", now=NOW).prescription
    assert prescription is not None
    assert adherence(prescription, sessions, today=WEEK_1 - timedelta(days=1)) == ()
    months_later = adherence(prescription, sessions, today=NOW.date() + timedelta(weeks=20))
    assert [w.start for w in months_later] == [WEEK_1 + timedelta(weeks=i) for i in range(4)]
    assert all(w.complete for w in months_later)
    assert [w.sessions for w in months_later] == [3, 1, 1, 0]


def test_the_record_holds_everything_about_the_person(database: Database) -> None:
    prescription = _mrs_k(database)
    _person(database, "mr-b")
    _walk(database, "b-1", WEEK_2, person="mr-b", device="tm-3")
    with database.session() as db:
        record = person_record(db, "mrs-k", now=NOW)
    assert record.person.id == "mrs-k"
    assert record.person.name == "MRS-K"
    assert record.generated == NOW
    assert [p.id for p in record.prescriptions] == [prescription]
    assert record.prescription is not None
    assert record.prescription.id == prescription
    assert [s.id for s in record.sessions] == [
        "before",
        "w1-a",
        "w1-b",
        "w1-c",
        "w2-a",
        "w2-b",
        "w3-a",
    ]
    assert [s.started for s in record.sessions] == sorted(s.started for s in record.sessions)
    assert record.devices == ("tm-1", "tm-2")
    assert [(m.name, m.value) for m in record.measures] == [("tug", 14.1), ("tug", 12.9)]
    assert [(s.week_start, s.decision) for s in record.steps] == [
        (WEEK_1, "hold"),  # w1-c was stopped early
        (WEEK_2, "hold"),  # pain rose by 4 in w2-b
    ]
    short = record.sessions[5]
    assert short.annotation is not None
    assert short.annotation.pain_rise == 4
    assert short.prescription_id == prescription
    assert record.sessions[0].prescription_id is None


def test_a_person_with_nothing_yet_has_an_empty_record(database: Database) -> None:
    with database.session() as db:
        add_person(db, parse(PersonForm, {"id": "new-1"}), now=CREATED)
        record = person_record(db, "new-1", now=NOW)
    assert (record.prescriptions, record.sessions, record.measures) == ((), (), ())
    assert (record.steps, record.adherence, record.devices) == ((), (), ())
    assert record.prescription is None
    with database.session() as db, pytest.raises(NotFoundError, match="person 'nobody'"):
        person_record(db, "nobody", now=NOW)


def _counts(database: Database) -> dict[str, int]:
    with database.session() as db:
        return {
            table.__tablename__: int(db.scalar(select(func.count()).select_from(table)) or 0)
            for table in (
                PersonRow,
                PrescriptionRow,
                StepRow,
                SessionRow,
                AnnotationRow,
                MeasureRow,
                CommandRow,
                AccountRow,
                LoginRow,
            )
        }


def test_deleting_a_person_removes_everything_about_them_and_nothing_else(
    database: Database,
) -> None:
    _mrs_k(database)
    _person(database, "mr-b", progression=True)
    _walk(database, "b-1", WEEK_1 + timedelta(days=2), person="mr-b")
    with database.session() as db:
        annotate(db, "b-1", parse(AnnotationForm, {"pain_before": 1, "pain_after": 1}), now=NOW)
    _measure(database, "mr-b", "berg", 48, WEEK_1)
    _walk(database, "anon", WEEK_1, person=None)
    with database.session() as db:
        propose_due(db, PROGRAMS, today=NOW.date(), now=NOW)
        accounts.add_account(db, "tess", "a therapist's password", now=NOW)
        for person in ("mrs-k", "mr-b"):  # a start for each, from the dashboard
            body = {"person": person, "check": {"pain_before": 2}}
            log_command(
                db,
                now=NOW,
                username="tess",
                device="tm-1",
                command="start",
                body=body,
                outcome="ok",
            )
    before = _counts(database)
    assert before == {
        "people": 2,
        "prescriptions": 2,
        "progression_steps": 4,
        "sessions": 9,
        "annotations": 2,
        "measures": 3,
        "commands": 2,
        "accounts": 1,
        "logins": 0,
    }
    with database.session() as db:
        deleted = delete_person(db, "mrs-k")
    assert deleted == Deleted(person="mrs-k", sessions=7, prescriptions=1, measures=2)
    assert _counts(database) == {
        "people": 1,
        "prescriptions": 1,
        "progression_steps": 2,
        "sessions": 2,
        "annotations": 1,
        "measures": 1,
        "commands": 1,
        "accounts": 1,
        "logins": 0,
    }
    with database.session() as db:
        assert [s.id for s in list_sessions(db)] == ["anon", "b-1"]
        assert get_session(db, "b-1").annotation is not None
        assert person_record(db, "mr-b", now=NOW).adherence[0].sessions == 1
        with pytest.raises(NotFoundError):
            get_person(db, "mrs-k")
    assert set(Base.metadata.tables) == set(before)


def test_deleting_an_unknown_person_changes_nothing(database: Database) -> None:
    _mrs_k(database)
    before = _counts(database)
    with database.session() as db, pytest.raises(NotFoundError, match="person 'nobody'"):
        delete_person(db, "nobody")
    assert _counts(database) == before
