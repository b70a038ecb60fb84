"""Prescriptions (clinic/prescriptions.py): checked against the program and the person's limits,
one active at a time, and what a start for a person resolves to; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from treadctl.clinic.database import Database, open_database
from treadctl.clinic.errors import ConflictError, FormError, NotFoundError
from treadctl.clinic.forms import PersonForm, PrescriptionForm, parse
from treadctl.clinic.people import add_person, archive_person
from treadctl.clinic.prescriptions import (
    add_prescription,
    end_prescription,
    get_prescription,
    list_prescriptions,
    resolve_start,
)
from treadctl.clinic.views import Prescription, ProgressionRule
from treadctl.programs.library import builtin_programs, parse_program

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PROGRAMS = {name: entry.program for name, entry in builtin_programs().items()}
PROGRAM = "backward-intervals"  # comfortable_backward_kmh 0.5-3.0; forward phases at 3.0 km/h


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


def _person(database: Database, person: str = "mrs-k", **more: Any) -> None:
    with database.session() as db:
        add_person(db, parse(PersonForm, {"id": person, **more}), now=NOW)


def _prescribe(
    database: Database, *, now: datetime = NOW, person: str = "mrs-k", **more: Any
) -> Prescription:
    form = {
        "person": person,
        "program": PROGRAM,
        "sessions_per_week": 3,
        "weeks": 4,
        "start_date": "2026-12-01",
        **more,
    }
    with database.session() as db:
        return add_prescription(db, parse(PrescriptionForm, form), PROGRAMS, now=now)


def _stored(database: Database) -> list[Prescription]:
    with database.session() as db:
        return list_prescriptions(db)


def test_a_prescription_is_stored_with_the_persons_saved_parameters(database: Database) -> None:
    _person(database, parameters={"comfortable_backward_kmh": 1.8, "other_kmh": 4.0})
    made = _prescribe(database, progression={"step_pct": 5})
    assert made.person_id == "mrs-k"
    assert made.program == PROGRAM
    assert made.parameters == {"comfortable_backward_kmh": 1.8}  # only what the program takes
    assert (made.sessions_per_week, made.weeks, made.start_date) == (3, 4, date(2026, 12, 1))
    assert made.progression == ProgressionRule(step_pct=5.0)
    assert made.created == NOW
    assert made.active
    with database.session() as db:
        assert get_prescription(db, made.id) == made


def test_the_prescriptions_parameters_win_over_the_saved_ones(database: Database) -> None:
    _person(database, parameters={"comfortable_backward_kmh": 1.8})
    made = _prescribe(database, parameters={"comfortable_backward_kmh": 2.2})
    assert made.parameters == {"comfortable_backward_kmh": 2.2}


@pytest.mark.parametrize(
    ("more", "error", "message"),
    [
        (
            {"program": "moonwalk"},
            FormError,
            r"program: unknown program 'moonwalk' \(known: alghadir2019-knee-oa, ",
        ),
        (
            {"parameters": {"comfortable_backward_kmh": 3.5}},
            FormError,
            r"parameters\.comfortable_backward_kmh: 3\.5 km/h is outside 0\.5-3",
        ),
        (
            {"parameters": {"speed_kmh": 2.0}},
            FormError,
            r"parameters\.speed_kmh: backward-intervals has no such parameter \(it has: comf",
        ),
        (
            {
                "progression": {"parameter": "incline_pct"},
                "parameters": {"comfortable_backward_kmh": 1.2},
            },
            FormError,
            r"progression\.parameter: backward-intervals has no parameter 'incline_pct'",
        ),
        (
            {"parameters": {"comfortable_backward_kmh": 2.0}, "person": "mrs-k"},
            ConflictError,
            (
                r"backward-intervals with these parameters: phase 2 \"backward bout\" "
                r"\(repeat 1\): 2 km/h exceeds the person's limit max_speed_backward_kmh = 1\.5"
            ),
        ),
        (
            {"person": "mr-b"},
            ConflictError,
            r"phase 1 \"warm-up\": 3 km/h exceeds the person's limit max_speed_forward_kmh = 2\.8",
        ),
        ({"person": "nobody"}, NotFoundError, r"person 'nobody': no such person"),
    ],
)
def test_a_prescription_the_program_or_the_limits_forbid_is_refused_and_nothing_changes(
    database: Database, more: dict[str, Any], error: type[Exception], message: str
) -> None:
    _person(database, "mrs-k", limits={"max_speed_backward_kmh": 1.5})
    _person(database, "mr-b", limits={"max_speed_forward_kmh": 2.8})
    earlier = [_prescribe(database, parameters={"comfortable_backward_kmh": 1.2})]
    with pytest.raises(error, match=message):
        _prescribe(database, now=NOW + timedelta(days=1), **more)
    assert _stored(database) == earlier


@pytest.mark.parametrize(
    ("more", "field"),
    [
        ({"sessions_per_week": 0}, "sessions_per_week: Input should be greater than or equal to 1"),
        ({"weeks": 105}, "weeks: Input should be less than or equal to 104"),
        ({"start_date": "soon"}, "start_date: Input should be a valid date"),
        (
            {"parameters": {"comfortable_backward_kmh": float("nan")}},
            "parameters.comfortable_backward_kmh: Input should be a finite number",
        ),
        ({"progression": {"step_pct": 50}}, "progression.step_pct: Input should be less than"),
        ({"person": "Mrs K"}, "person: String should match pattern"),
    ],
)
def test_a_bad_prescription_form_names_the_field(more: dict[str, Any], field: str) -> None:
    good = {"person": "mrs-k", "program": PROGRAM, "sessions_per_week": 3, "weeks": 4}
    with pytest.raises(FormError, match=field):
        parse(PrescriptionForm, {**good, "start_date": "2026-12-01", **more})


def test_a_new_prescription_ends_the_earlier_active_one(database: Database) -> None:
    _person(database, "mrs-k")
    _person(database, "mr-b")
    first = _prescribe(database)
    other = _prescribe(database, person="mr-b")
    later = NOW + timedelta(weeks=4)
    second = _prescribe(database, now=later, weeks=2)
    with database.session() as db:
        assert get_prescription(db, first.id).ended == later
        assert get_prescription(db, second.id).active
        assert get_prescription(db, other.id).active  # someone else's is not touched
        ended = end_prescription(db, second.id, now=later + timedelta(days=1))
        again = end_prescription(db, second.id, now=later + timedelta(days=2))
    assert ended.ended == again.ended == later + timedelta(days=1)
    with database.session() as db, pytest.raises(NotFoundError, match="prescription 999"):
        get_prescription(db, 999)


def test_an_archived_person_gets_no_prescription(database: Database) -> None:
    _person(database)
    with database.session() as db:
        archive_person(db, "mrs-k", now=NOW)
    with pytest.raises(ConflictError, match="person 'mrs-k' is archived"):
        _prescribe(database)
    assert _stored(database) == []


def test_a_start_resolves_to_the_active_prescription_and_the_persons_limits(
    database: Database,
) -> None:
    limits = {"max_speed_backward_kmh": 2.5, "heart_rate_max_bpm": 125}
    _person(database, limits=limits, parameters={"comfortable_backward_kmh": 1.0})
    _prescribe(database, parameters={"comfortable_backward_kmh": 1.4}, weeks=6)
    active = _prescribe(database, now=NOW + timedelta(days=2), parameters={})
    with database.session() as db:
        plan = resolve_start(db, "mrs-k", PROGRAMS)
    assert plan.payload() == {
        "program": PROGRAM,
        "parameters": {"comfortable_backward_kmh": 1.0},
        "person": "mrs-k",
        "limits": limits,
    }
    assert plan.prescription_id == active.id
    assert plan.plan == {"sessions_per_week": 3, "weeks": 4}
    with database.session() as db:
        changed = resolve_start(db, "mrs-k", PROGRAMS, parameters={"comfortable_backward_kmh": 2})
    assert changed.parameters == {"comfortable_backward_kmh": 2.0}
    assert changed.prescription_id == active.id


def test_a_start_naming_a_program_takes_the_persons_saved_parameters(database: Database) -> None:
    _person(database, parameters={"comfortable_backward_kmh": 1.1})
    with database.session() as db:
        plan = resolve_start(db, "mrs-k", PROGRAMS, program="elderly-balance")
    assert plan.payload() == {
        "program": "elderly-balance",
        "parameters": {"comfortable_backward_kmh": 1.1},
        "person": "mrs-k",
    }
    assert (plan.prescription_id, plan.plan) == (None, {})


@pytest.mark.parametrize(
    ("person", "more", "error", "message"),
    [
        ("nobody", {}, NotFoundError, r"person 'nobody': no such person"),
        ("mr-old", {}, ConflictError, r"person 'mr-old' is archived \(since 2026-12-01\)"),
        (
            "mr-b",
            {},
            ConflictError,
            r"person 'mr-b' has no active prescription; name a program to start",
        ),
        ("mr-b", {"program": "moonwalk"}, FormError, r"program: unknown program 'moonwalk'"),
        (
            "mr-b",
            {"program": PROGRAM, "parameters": {"comfortable_backward_kmh": 2.1}},
            ConflictError,
            r"\(repeat 1\): 2\.1 km/h exceeds the person's limit max_speed_backward_kmh = 2 km/h",
        ),
        (
            "mr-b",
            {"program": PROGRAM, "parameters": {"comfortable_backward_kmh": 0.1}},
            FormError,
            r"parameters\.comfortable_backward_kmh: 0\.1 km/h is outside 0\.5-3",
        ),
    ],
)
def test_a_start_that_cannot_be_resolved_is_refused(
    database: Database, person: str, more: dict[str, Any], error: type[Exception], message: str
) -> None:
    _person(database, "mr-b", limits={"max_speed_backward_kmh": 2.0})
    _person(database, "mr-old")
    _prescribe(database, person="mr-old")
    with database.session() as db:
        archive_person(db, "mr-old", now=NOW)
    with database.session() as db, pytest.raises(error, match=message):
        resolve_start(db, person, PROGRAMS, **more)


def test_a_start_naming_the_prescribed_program_keeps_its_other_parameters(
    database: Database,
) -> None:
    two = parse_program(
        'name = "two-speeds"\ntitle = "Two speeds"\n'
        "[parameters.slow_kmh]\n"
        'description = "slow"\ndefault = 0.8\nmin = 0.3\nmax = 2.0\n'
        "[parameters.fast_kmh]\n"
        'description = "fast"\ndefault = 1.5\nmin = 0.3\nmax = 2.5\n'
        '[[phases]]\nname = "slow"\nwalk = "backward"\nduration = "1m"\n'
        'speed_fraction = 1.0\nspeed_of = "slow_kmh"\n'
        '[[phases]]\nname = "fast"\nwalk = "backward"\nduration = "1m"\n'
        'speed_fraction = 1.0\nspeed_of = "fast_kmh"\n',
        "test",
    )
    programs = {**PROGRAMS, two.name: two}
    _person(database, parameters={"slow_kmh": 0.5})
    form = {
        "person": "mrs-k",
        "program": two.name,
        "parameters": {"slow_kmh": 0.7, "fast_kmh": 1.2},
        "sessions_per_week": 3,
        "weeks": 4,
        "start_date": "2026-12-01",
    }
    with database.session() as db:
        add_prescription(db, parse(PrescriptionForm, form), programs, now=NOW)
        plan = resolve_start(db, "mrs-k", programs, program=two.name, parameters={"fast_kmh": 1.3})
    # the one given for this start, the prescription's other one (not the saved 0.5)
    assert plan.parameters == {"slow_kmh": 0.7, "fast_kmh": 1.3}
