"""Progression steps in the database (clinic/steps.py): one proposed per complete week, the
prescription changed only by an approval, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from clinic.documents import session_document
from treadctl.clinic.annotations import annotate
from treadctl.clinic.database import Database, open_database
from treadctl.clinic.errors import ConflictError, NotFoundError
from treadctl.clinic.forms import AnnotationForm, PersonEdit, PersonForm, PrescriptionForm, parse
from treadctl.clinic.ingest import store_record
from treadctl.clinic.people import add_person, edit_person
from treadctl.clinic.prescriptions import add_prescription, end_prescription, get_prescription
from treadctl.clinic.steps import decide, list_steps, propose_due, propose_week
from treadctl.clinic.views import ProgressionStep
from treadctl.programs.library import builtin_programs

PROGRAMS = {name: entry.program for name, entry in builtin_programs().items()}
PROGRAM = "alghadir2019-knee-oa"  # one backward phase at comfortable_backward_kmh (0.5-3.0)
WEEK_1 = date(2026, 11, 30)  # a Monday, the prescription's start
WEEK_2 = WEEK_1 + timedelta(weeks=1)
WEEK_3 = WEEK_1 + timedelta(weeks=2)
CREATED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 16, 18, 0, tzinfo=UTC)  # Wednesday of week 3
PARAMETER = "comfortable_backward_kmh"


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


def _prescribe(database: Database, *, limits: dict[str, float] | None = None, **more: Any) -> int:
    form = {
        "person": "mrs-k",
        "program": PROGRAM,
        "parameters": {PARAMETER: 2.0},
        "sessions_per_week": 3,
        "weeks": 4,
        "start_date": WEEK_1.isoformat(),
        "progression": {},
        **more,
    }
    with database.session() as db:
        add_person(db, parse(PersonForm, {"id": "mrs-k", "limits": limits or {}}), now=CREATED)
        return add_prescription(db, parse(PrescriptionForm, form), PROGRAMS, now=CREATED).id


def _walk(database: Database, monday: date, days: list[int], **note: Any) -> list[str]:
    """A finished session on each day of the week; `note` annotates the last one."""
    ids = []
    with database.session() as db:
        for day in days:
            started = datetime.combine(monday + timedelta(days=day), datetime.min.time(), UTC)
            sid = f"{monday}-{day}"
            store_record(db, session_document(sid, started=started + timedelta(hours=10)), now=NOW)
            ids.append(sid)
        if note:
            annotate(db, ids[-1], parse(AnnotationForm, note), now=NOW)
    return ids


def _due(database: Database, *, now: datetime = NOW) -> list[ProgressionStep]:
    with database.session() as db:
        return propose_due(db, PROGRAMS, today=now.date(), now=now)


def _parameter(database: Database, prescription: int) -> float:
    with database.session() as db:
        return get_prescription(db, prescription).parameters[PARAMETER]


def _decide(database: Database, step: int, *, approve: bool) -> ProgressionStep:
    with database.session() as db:
        return decide(db, step, approve=approve, by="therapist A", now=NOW, programs=PROGRAMS)


def test_one_pending_step_per_complete_week_and_none_for_this_week(database: Database) -> None:
    prescription = _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4])
    _walk(database, WEEK_2, [1, 3])
    _walk(database, WEEK_3, [0, 1, 2])  # this week: not judged yet
    steps = _due(database)
    assert [(s.week_start, s.decision, s.old_value, s.new_value) for s in steps] == [
        (WEEK_1, "increase", 2.0, 2.2),
        (WEEK_2, "hold", 2.0, 2.0),
    ]
    assert {s.status for s in steps} == {"pending"}
    assert {s.prescription_id for s in steps} == {prescription}
    assert steps[0].reason == "all 3 sessions done, no symptom: +10 %"
    assert steps[1].reason == "2 of 3 sessions that week: hold"
    assert steps[0].created == NOW
    assert _due(database) == []  # asked again the same day: nothing new
    with database.session() as db:
        assert list_steps(db, person_id="mrs-k", pending=True) == steps
    assert _parameter(database, prescription) == 2.0  # proposals change nothing


def test_no_step_beyond_the_plan_nor_for_an_ended_prescription(database: Database) -> None:
    prescription = _prescribe(database, weeks=1)
    long_after = NOW + timedelta(weeks=8)
    assert [s.week_start for s in _due(database, now=long_after)] == [WEEK_1]
    with database.session() as db:
        end_prescription(db, prescription, now=long_after)
    assert _due(database, now=long_after + timedelta(weeks=1)) == []


def test_approving_changes_the_prescriptions_parameter(database: Database) -> None:
    prescription = _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4])
    step = _due(database)[0]
    approved = _decide(database, step.id, approve=True)
    assert (approved.status, approved.decided_by, approved.decided) == (
        "approved",
        "therapist A",
        NOW,
    )
    assert _parameter(database, prescription) == 2.2


def test_rejecting_leaves_the_prescription_as_it_was(database: Database) -> None:
    prescription = _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4])
    step = _due(database)[0]
    assert _decide(database, step.id, approve=False).status == "rejected"
    assert _parameter(database, prescription) == 2.0


@pytest.mark.parametrize("first", [True, False])
def test_a_step_is_decided_once(database: Database, *, first: bool) -> None:
    prescription = _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4])
    step = _due(database)[0]
    _decide(database, step.id, approve=first)
    expected = "approved" if first else "rejected"
    for again in (True, False):
        with pytest.raises(ConflictError, match=f"step {step.id} was {expected} already"):
            _decide(database, step.id, approve=again)
    assert _parameter(database, prescription) == (2.2 if first else 2.0)
    with (
        database.session() as db,
        pytest.raises(ConflictError, match=rf"the week of {WEEK_1} was {expected} already"),
    ):
        propose_week(db, prescription, WEEK_1, PROGRAMS, now=NOW)
    with database.session() as db, pytest.raises(NotFoundError, match="step 999"):
        decide(db, 999, approve=True, by="therapist A", now=NOW)


def test_an_approval_after_the_parameter_changed_meanwhile_is_refused(database: Database) -> None:
    prescription = _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4])
    _walk(database, WEEK_2, [0, 2, 4])
    first, second = _due(database)
    assert (second.old_value, second.new_value) == (2.0, 2.2)
    _decide(database, first.id, approve=True)
    with pytest.raises(
        ConflictError,
        match=f"step {second.id}: {PARAMETER} is 2.2 now, not the 2 it was proposed from",
    ):
        _decide(database, second.id, approve=True)
    assert _parameter(database, prescription) == 2.2
    with database.session() as db:
        assert [s.status for s in list_steps(db)] == ["approved", "pending"]
        again = propose_week(db, prescription, WEEK_2, PROGRAMS, now=NOW)  # proposed afresh
    assert (again.id, again.old_value, again.new_value) == (second.id, 2.2, 2.4)


def test_the_increase_is_capped_by_the_persons_limits(database: Database) -> None:
    prescription = _prescribe(database, limits={"max_speed_backward_kmh": 2.15})
    _walk(database, WEEK_1, [0, 2, 4])
    _walk(database, WEEK_2, [0, 2, 4])
    first = _due(database)[0]
    assert (first.decision, first.new_value) == ("increase", 2.1)
    assert first.reason.endswith("capped at 2.1 by the limits")
    _decide(database, first.id, approve=True)
    with database.session() as db:
        second = propose_week(db, prescription, WEEK_2, PROGRAMS, now=NOW)
    assert (second.decision, second.old_value, second.new_value) == ("hold", 2.1, 2.1)


def test_limits_tightened_after_the_proposal_refuse_its_approval(database: Database) -> None:
    prescription = _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4])
    step = _due(database)[0]
    with database.session() as db:
        edit_person(db, "mrs-k", parse(PersonEdit, {"limits": {"max_speed_backward_kmh": 2.1}}))
    with pytest.raises(
        ConflictError,
        match=(
            r"2\.2 is beyond the person's limits now \(.*limit max_speed_backward_kmh = 2\.1 km/h\)"
        ),
    ):
        _decide(database, step.id, approve=True)
    assert _parameter(database, prescription) == 2.0


def test_symptoms_in_the_week_hold_or_step_back(database: Database) -> None:
    _prescribe(database)
    _walk(database, WEEK_1, [0, 2, 4], pain_before=2, pain_after=5)
    _walk(
        database,
        WEEK_2,
        [0, 2, 4],
        adverse_events=[{"category": "near_fall", "text": "lost balance, caught the rail"}],
    )
    first, second = _due(database)
    assert (first.decision, first.new_value) == ("hold", 2.0)
    assert first.reason == "pain rose by 3 points on Fri 04 Dec: hold"
    assert (second.decision, second.new_value) == ("step_back", 1.8)
    assert second.reason == "adverse event (near_fall) on Fri 11 Dec: step back 10 %"
