"""People and their measures (clinic/people.py, clinic/forms.py) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from treadctl.clinic.database import Database, open_database
from treadctl.clinic.errors import ConflictError, FormError, NotFoundError
from treadctl.clinic.forms import MeasureForm, PersonEdit, PersonForm, PrescriptionForm, parse
from treadctl.clinic.people import (
    add_measure,
    add_person,
    archive_person,
    edit_person,
    get_person,
    list_measures,
    list_people,
)
from treadctl.clinic.prescriptions import add_prescription, list_prescriptions
from treadctl.programs.library import builtin_programs

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PROGRAMS = {name: entry.program for name, entry in builtin_programs().items()}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


def _add(database: Database, data: dict[str, Any], *, now: datetime = NOW) -> None:
    with database.session() as db:
        add_person(db, parse(PersonForm, data), now=now)


def test_a_person_is_stored_and_read_back_as_given(database: Database) -> None:
    _add(
        database,
        {
            "id": "mrs-k",
            "name": "  Karin K.  ",
            "notes": "knee OA, left",
            "limits": {"max_speed_backward_kmh": 2.5, "heart_rate_max_bpm": 130},
            "parameters": {"comfortable_backward_kmh": 1.8},
        },
    )
    with database.session() as db:
        person = get_person(db, "mrs-k")
    assert person.name == "Karin K."
    assert person.notes == "knee OA, left"
    assert person.limits == {"max_speed_backward_kmh": 2.5, "heart_rate_max_bpm": 130}
    assert person.parameters == {"comfortable_backward_kmh": 1.8}
    assert person.created == NOW
    assert person.created.tzinfo is not None
    assert person.archived is None
    assert person.display() == "mrs-k"
    assert person.display(names=True) == "Karin K. (mrs-k)"


def test_an_id_taken_already_is_refused_and_the_first_person_kept(database: Database) -> None:
    _add(database, {"id": "mrs-k", "name": "Karin"})
    with pytest.raises(ConflictError, match="person 'mrs-k' exists already"):
        _add(database, {"id": "mrs-k", "name": "Someone else"})
    with database.session() as db:
        assert [(p.id, p.name) for p in list_people(db)] == [("mrs-k", "Karin")]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "Mrs K"}, "id: String should match pattern"),
        ({"id": "x" * 33}, "id: String should match pattern"),
        (
            {"id": "mrs-k", "limits": {"max_speed_backward_kmh": 7.0}},
            "limits.max_speed_backward_kmh: Input should be less than or equal to 6.5",
        ),
        (
            {"id": "mrs-k", "limits": {"max_speed_forward_kmh": 0}},
            "limits.max_speed_forward_kmh: Input should be greater than 0",
        ),
        (
            {"id": "mrs-k", "limits": {"heart_rate_max_bpm": 250}},
            "limits.heart_rate_max_bpm: Input should be less than or equal to 220",
        ),
        ({"id": "mrs-k", "limits": {"max_speed": 2}}, "limits.max_speed: Extra inputs"),
        (
            {"id": "mrs-k", "parameters": {"comfortable_backward_kmh": -1}},
            "parameters: Value error, comfortable_backward_kmh must be a positive number",
        ),
        (
            {"id": "mrs-k", "parameters": {"comfortable_backward_kmh": float("nan")}},
            "parameters.comfortable_backward_kmh: Input should be a finite number",
        ),
        ({"id": "mrs-k", "name": ""}, "name: String should have at least 1 character"),
        ({"id": "mrs-k", "age": 81}, "age: Extra inputs are not permitted"),
        # PostgreSQL's text cannot hold NUL: refused on both databases alike
        ({"id": "mrs-k", "name": "Ka\x00rin"}, "name: NUL characters are not allowed"),
        ({"id": "mrs-k", "notes": "a\x00"}, "notes: NUL characters are not allowed"),
        (
            {"id": "mrs-k", "parameters": {"speed\x00": 1.0}},
            "parameters: NUL characters are not allowed",
        ),
    ],
)
def test_a_bad_person_form_names_the_field_and_stores_nothing(
    database: Database, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(FormError, match=field):
        _add(database, data)
    with database.session() as db:
        assert list_people(db, archived=True) == []


def test_every_wrong_field_is_named_at_once() -> None:
    with pytest.raises(FormError) as caught:
        parse(PersonForm, {"id": "Mrs K", "limits": {"max_incline_pct": 20}})
    assert str(caught.value).split("; ") == [
        "id: String should match pattern '^[a-z0-9-]{1,32}$'",
        "limits.max_incline_pct: Input should be less than or equal to 15",
    ]


def test_an_edit_changes_only_the_fields_given(database: Database) -> None:
    _add(
        database,
        {
            "id": "mrs-k",
            "name": "Karin",
            "notes": "left knee",
            "limits": {"max_speed_backward_kmh": 2.5},
            "parameters": {"comfortable_backward_kmh": 1.8},
        },
    )
    with database.session() as db:
        edited = edit_person(db, "mrs-k", parse(PersonEdit, {"limits": {"max_incline_pct": 5}}))
    assert edited.name == "Karin"
    assert edited.notes == "left knee"
    assert edited.limits == {"max_incline_pct": 5}
    assert edited.parameters == {"comfortable_backward_kmh": 1.8}
    with database.session() as db:
        edit_person(db, "mrs-k", parse(PersonEdit, {"name": None, "notes": "both knees"}))
    with database.session() as db:
        person = get_person(db, "mrs-k")
    assert (person.name, person.notes, person.limits) == (
        None,
        "both knees",
        {"max_incline_pct": 5},
    )


def test_a_bad_edit_changes_nothing(database: Database) -> None:
    _add(database, {"id": "mrs-k", "limits": {"max_speed_backward_kmh": 2.5}})
    with pytest.raises(
        FormError,
        match=r"limits\.max_speed_backward_kmh: Input should be less than or equal to 6.5",
    ):
        parse(PersonEdit, {"limits": {"max_speed_backward_kmh": 9}})
    with database.session() as db:
        assert get_person(db, "mrs-k").limits == {"max_speed_backward_kmh": 2.5}


def test_an_unknown_person_is_not_found(database: Database) -> None:
    with database.session() as db, pytest.raises(NotFoundError, match="person 'nobody'"):
        get_person(db, "nobody")
    with database.session() as db, pytest.raises(NotFoundError, match="person 'nobody'"):
        edit_person(db, "nobody", parse(PersonEdit, {"notes": "x"}))
    with database.session() as db, pytest.raises(NotFoundError, match="person 'nobody'"):
        archive_person(db, "nobody", now=NOW)


def test_archiving_keeps_the_record_ends_prescriptions_and_refuses_new_work(
    database: Database,
) -> None:
    _add(database, {"id": "mrs-k"})
    _add(database, {"id": "mr-b"})
    with database.session() as db:
        add_prescription(
            db,
            parse(
                PrescriptionForm,
                {
                    "person": "mrs-k",
                    "program": "backward-intervals",
                    "sessions_per_week": 3,
                    "weeks": 4,
                    "start_date": "2026-12-01",
                },
            ),
            PROGRAMS,
            now=NOW,
        )
    later = NOW + timedelta(days=3)
    with database.session() as db:
        archived = archive_person(db, "mrs-k", now=later)
    assert archived.archived == later
    with database.session() as db:
        assert [p.id for p in list_people(db)] == ["mr-b"]
        assert [p.id for p in list_people(db, archived=True)] == ["mr-b", "mrs-k"]
        assert [p.ended for p in list_prescriptions(db, "mrs-k")] == [later]
    with (
        database.session() as db,
        pytest.raises(ConflictError, match=r"person 'mrs-k' is archived \(since 2026-12-04\)"),
    ):
        add_measure(db, _measure("mrs-k", "tug", 12.5))
    with database.session() as db:
        archive_person(db, "mrs-k", now=later + timedelta(days=1))  # already: the date stays
        restored = edit_person(db, "mrs-k", PersonEdit(), restore=True)
    assert archived.archived == later
    assert restored.archived is None
    with database.session() as db:
        add_measure(db, _measure("mrs-k", "tug", 12.5))
        assert [m.value for m in list_measures(db, "mrs-k")] == [12.5]


def _measure(person: str, name: str, value: float, on: str = "2026-12-01") -> MeasureForm:
    return parse(
        MeasureForm,
        {"person": person, "name": name, "value": value, "unit": "s", "measured_on": on},
    )


def test_measures_read_back_in_date_order_for_their_person_only(database: Database) -> None:
    _add(database, {"id": "mrs-k"})
    _add(database, {"id": "mr-b"})
    with database.session() as db:
        add_measure(db, _measure("mrs-k", "tug", 11.0, "2026-12-15"))
        add_measure(db, _measure("mrs-k", "tug", 13.2, "2026-12-01"))
        add_measure(db, _measure("mr-b", "berg", 48, "2026-12-02"))
        add_measure(db, _measure("mrs-k", "walk-10m", 0.9, "2026-12-15"))
    with database.session() as db:
        measures = list_measures(db, "mrs-k")
    assert [(m.name, m.value, m.measured_on) for m in measures] == [
        ("tug", 13.2, date(2026, 12, 1)),
        ("tug", 11.0, date(2026, 12, 15)),
        ("walk-10m", 0.9, date(2026, 12, 15)),
    ]
    assert {m.person_id for m in measures} == {"mrs-k"}
    with database.session() as db, pytest.raises(NotFoundError, match="person 'nobody'"):
        add_measure(db, _measure("nobody", "tug", 10))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "Timed Up and Go"}, "name: String should match pattern"),
        ({"value": float("inf")}, "value: Input should be a finite number"),
        ({"value": "fast"}, "value: Input should be a valid number"),
        ({"measured_on": "yesterday"}, "measured_on: Input should be a valid date"),
        ({"unit": "x" * 17}, "unit: String should have at most 16 characters"),
    ],
)
def test_a_bad_measure_names_the_field(data: dict[str, Any], field: str) -> None:
    good = {"person": "mrs-k", "name": "tug", "value": 12.0, "measured_on": "2026-12-01"}
    with pytest.raises(FormError, match=field):
        parse(MeasureForm, {**good, **data})
