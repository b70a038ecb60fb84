"""Session records from the daemons into the clinic's database (clinic/ingest.py): stored once
by session id, the dose worked out from the samples, linked to the prescription in force, and
malformed records refused naming the field; on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from clinic.documents import session_document
from treadctl.clinic.annotations import annotate
from treadctl.clinic.database import Database, open_database
from treadctl.clinic.errors import FormError
from treadctl.clinic.forms import AnnotationForm, PersonForm, PrescriptionForm, parse
from treadctl.clinic.ingest import store_record
from treadctl.clinic.people import add_person
from treadctl.clinic.prescriptions import add_prescription
from treadctl.clinic.record import get_session
from treadctl.clinic.tables import SessionRow
from treadctl.clinic.views import Deviation, SessionDose
from treadctl.programs.library import builtin_programs

PROGRAMS = {name: entry.program for name, entry in builtin_programs().items()}
PROGRAM = "alghadir2019-knee-oa"
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
T0 = MONDAY.timestamp()
RECEIVED = MONDAY + timedelta(hours=2)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


def _store(database: Database, document: Any, *, now: datetime = RECEIVED) -> tuple[str, bool]:
    with database.session() as db:
        return store_record(db, document, now=now)


def _read(database: Database, session_id: str) -> SessionDose:
    with database.session() as db:
        return get_session(db, session_id)


def _count(database: Database) -> int:
    with database.session() as db:
        return int(db.scalar(select(func.count()).select_from(SessionRow)) or 0)


Row = tuple[float, float, float, str, float, int | None, str]


def _sample(row: Row) -> dict[str, Any]:
    """(wall seconds after the start, elapsed_s, speed, walk, distance, heart rate, mode)"""
    dt, elapsed, speed, walk, dist, hr, mode = row
    return {
        "ts": T0 + dt,
        "elapsed_s": elapsed,
        "speed_kmh": speed,
        "belt": "reverse" if walk == "backward" else "forward",
        "walk": walk,
        "incline_pct": 0.0,
        "target_kmh": speed,
        "distance_m": dist,
        "heart_rate_bpm": hr,
        "phase_index": 0,
        "mode": mode,
    }


BY_HAND: list[Row] = [
    (0, 0, 0.0, "backward", 0.0, 90, "running"),
    (10, 10, 2.0, "backward", 0.0, 100, "running"),
    (70, 70, 3.0, "backward", 33.333, 120, "running"),
    (130, 130, 0.0, "backward", 83.333, None, "paused"),
    (190, 130, 1.0, "forward", 83.333, None, "running"),
    (250, 190, 0.0, "forward", 100.0, None, "stopping"),
]


def _by_hand() -> dict[str, Any]:
    """10 s still, 60 s backward at 2 km/h, 60 s at 3 km/h, a 60 s pause, 60 s forward; stopped."""
    return {
        "format": "treadctl-session",
        "version": 1,
        "session": {
            "id": "s-hand",
            "device_id": "tm-2",
            "driver": "sim",
            "program": PROGRAM,
            "parameters": {"comfortable_backward_kmh": 2.0},
            "planned_s": 1800.0,
            "started": T0,
            "ended": T0 + 250,
            "ended_how": "stopped",
            "end_cause": "stopped",
            "end_detail": "stop command",
            "person": "mrs-k",
            "summary": {"duration_s": 190.0},
        },
        "phases": [],
        "events": [
            {"ts": T0, "type": "session_started", "details": {"program": PROGRAM}},
            {"ts": T0 + 130, "type": "paused", "details": {}},
            {"ts": T0 + 190, "type": "resumed", "details": {}},
            {"ts": T0 + 245, "type": "stopping", "details": {"reason": "stopped", "detail": "x"}},
            {"ts": T0 + 250, "type": "session_finished", "details": {"ended": "stopped"}},
        ],
        "samples": [_sample(row) for row in BY_HAND],
    }


def test_the_dose_is_worked_out_from_the_samples(database: Database) -> None:
    assert _store(database, _by_hand()) == ("s-hand", True)
    dose = _read(database, "s-hand")
    assert dose.device_id == "tm-2"
    assert dose.person_id == "mrs-k"
    assert dose.program == PROGRAM
    assert dose.parameters == {"comfortable_backward_kmh": 2.0}
    assert (dose.started, dose.ended) == (MONDAY, MONDAY + timedelta(seconds=250))
    assert (dose.ended_how, dose.end_cause, dose.planned_s) == ("stopped", "stopped", 1800.0)
    assert dose.duration_s == 190.0  # on the belt: the pause is not counted
    assert dose.backward_s == 120.0  # moving backward: not the standstill, nor forward
    assert dose.distance_m == 100.0
    assert dose.speed_backward_avg_kmh == 2.5  # (60 s x 2 + 60 s x 3) / 120 s
    assert dose.speed_max_kmh == 3.0
    assert dose.heart_rate_avg_bpm == 108  # (10 x 90 + 60 x 100 + 60 x 120) / 130, by time
    assert dose.heart_rate_peak_bpm == 120
    assert dose.deviations == (
        Deviation("pause", 130.0, "operator"),
        Deviation("stop", 245.0, "stopped"),
    )
    assert dose.annotation is None


def _ending(document: dict[str, Any], how: str, cause: str | None, *events: Any) -> None:
    document["session"].update(ended_how=how, end_cause=cause)
    document["events"] = [
        {"ts": T0 + at, "type": kind, "details": details} for at, kind, details in events
    ]


def test_estops_and_faults_are_deviations_with_their_causes(database: Database) -> None:
    estop = _by_hand()
    estop["session"]["id"] = "s-estop"
    _ending(
        estop,
        "estop",
        "estop_input",
        (60, "paused", {}),
        (61, "resumed", {}),
        (200.5, "estop", {"cause": "estop_input", "detail": "button pressed"}),
    )
    fault = _by_hand()
    fault["session"]["id"] = "s-fault"
    _ending(
        fault,
        "fault",
        "link_lost",
        (100, "fault", {"cause": "link_lost", "detail": "no answer"}),
        (100, "estop", {"cause": "link_lost", "detail": "no answer"}),
    )
    _store(database, estop)
    _store(database, fault)
    assert _read(database, "s-estop").deviations == (
        Deviation("pause", 60.0, "operator"),
        Deviation("estop", 200.5, "estop_input"),
    )
    assert _read(database, "s-fault").deviations == (
        Deviation("fault", 100.0, "link_lost"),
        Deviation("estop", 100.0, "link_lost"),
    )


def test_a_session_that_finished_as_planned_has_no_deviation(database: Database) -> None:
    finished = _by_hand()
    # the controller's own stop at the end of the program (StopReason.FINISHED)
    _ending(
        finished,
        "finished",
        None,
        (245, "stopping", {"reason": "finished", "detail": "program finished"}),
        (250, "session_finished", {"ended": "finished", "cause": None}),
    )
    _store(database, finished)
    assert _read(database, "s-hand").deviations == ()


def test_an_interrupted_session_says_so_at_its_end(database: Database) -> None:
    interrupted = _by_hand()
    _ending(interrupted, "interrupted", None)
    _store(database, interrupted)
    assert _read(database, "s-hand").deviations == (
        Deviation("interrupted", 250.0, "daemon restarted"),
    )


def test_a_record_sent_twice_is_stored_once(database: Database) -> None:
    document = session_document("s-1", started=MONDAY)
    assert _store(database, document) == ("s-1", True)
    assert _store(database, copy.deepcopy(document)) == ("s-1", False)
    assert _count(database) == 1
    with database.session() as db:
        row = db.get(SessionRow, "s-1")
        assert row is not None
        assert row.document == document  # as the daemon sent it, samples and all


def test_a_later_copy_replaces_the_figures_and_keeps_the_annotation(database: Database) -> None:
    _store(database, session_document("s-1", started=MONDAY, duration_s=60, ended_how="stopped"))
    with database.session() as db:
        annotate(
            db, "s-1", parse(AnnotationForm, {"pain_before": 3, "pain_after": 4}), now=RECEIVED
        )
    later = RECEIVED + timedelta(hours=1)
    longer = session_document("s-1", started=MONDAY, duration_s=120, speed_kmh=1.5)
    assert _store(database, longer, now=later) == ("s-1", False)
    dose = _read(database, "s-1")
    assert (dose.duration_s, dose.ended_how, dose.speed_max_kmh) == (120.0, "finished", 1.5)
    assert dose.annotation is not None
    assert (dose.annotation.pain_before, dose.annotation.pain_after) == (3, 4)
    with database.session() as db:
        row = db.get(SessionRow, "s-1")
        assert row is not None
        assert row.received == later
    assert _count(database) == 1


def _prescribe(database: Database, person: str, program: str, now: datetime) -> int:
    form = {
        "person": person,
        "program": program,
        "sessions_per_week": 3,
        "weeks": 4,
        "start_date": "2026-11-30",
    }
    with database.session() as db:
        return add_prescription(db, parse(PrescriptionForm, form), PROGRAMS, now=now).id


def test_a_session_is_linked_to_the_prescription_in_force_when_it_began(
    database: Database,
) -> None:
    with database.session() as db:
        add_person(db, parse(PersonForm, {"id": "mrs-k"}), now=MONDAY - timedelta(weeks=2))
        add_person(db, parse(PersonForm, {"id": "mr-b"}), now=MONDAY - timedelta(weeks=2))
    first = _prescribe(database, "mrs-k", PROGRAM, MONDAY - timedelta(days=1))
    second = _prescribe(database, "mrs-k", PROGRAM, MONDAY + timedelta(days=3))
    others = _prescribe(database, "mr-b", PROGRAM, MONDAY - timedelta(days=1))
    sessions = {
        "before-any": session_document("before-any", started=MONDAY - timedelta(days=2)),
        "first": session_document("first", started=MONDAY + timedelta(days=1)),
        "second": session_document("second", started=MONDAY + timedelta(days=4)),
        "elsewhere": session_document(
            "elsewhere", started=MONDAY + timedelta(days=4), program="elderly-balance"
        ),
        "mr-b": session_document("mr-b", started=MONDAY, person="mr-b"),
        "nobody": session_document("nobody", started=MONDAY, person=None),
    }
    for document in sessions.values():
        _store(database, document)
    linked = {name: _read(database, name).prescription_id for name in sessions}
    assert linked == {
        "before-any": None,
        "first": first,
        "second": second,
        "elsewhere": None,  # not the program prescribed
        "mr-b": others,
        "nobody": None,
    }


def test_a_session_of_a_person_the_clinic_does_not_know_is_kept(database: Database) -> None:
    _store(database, session_document("s-1", started=MONDAY, person="walk-in-7"))
    dose = _read(database, "s-1")
    assert (dose.person_id, dose.prescription_id) == ("walk-in-7", None)
    assert dose.duration_s == 120.0


def _broken(path: str, value: Any) -> dict[str, Any]:
    document = session_document("s-bad", started=MONDAY)
    *parents, last = path.split(".")
    where: Any = document
    for part in parents:
        where = where[int(part)] if part.isdigit() else where[part]
    if value is _MISSING:
        del where[last]
    else:
        where[int(last) if last.isdigit() else last] = value
    return document


_MISSING = object()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not a record", r"session record: body: Input should be a valid dictionary"),
        (_broken("format", "treadctl-csv"), r"format: Input should be 'treadctl-session'"),
        (_broken("version", 2), r"version: Input should be 1"),
        (_broken("session", _MISSING), r"session: Field required"),
        (_broken("session.id", _MISSING), r"session\.id: Field required"),
        (_broken("session.id", ""), r"session\.id: String should have at least 1 character"),
        (_broken("session.device_id", "x" * 65), r"session\.device_id: String should have at"),
        (_broken("session.ended", None), r"session\.ended: Input should be a valid number"),
        (_broken("session.ended", _MISSING), r"session\.ended: Field required"),
        (_broken("session.ended_how", "exploded"), r"session\.ended_how: Input should be"),
        (_broken("session.person", "Mrs K"), r"session\.person: String should match pattern"),
        (_broken("session.started", math.nan), r"session\.started: Input should be a finite"),
        (_broken("session.started", 1e20), r"session\.started: "),
        (_broken("samples.3.speed_kmh", math.nan), r"samples\.3\.speed_kmh: Input should be a"),
        (_broken("samples.3.distance_m", math.inf), r"samples\.3\.distance_m: Input should be"),
        (_broken("samples.3.walk", _MISSING), r"samples\.3\.walk: Field required"),
        (_broken("events.0.ts", "soon"), r"events\.0\.ts: Input should be a valid number"),
        (
            _broken("session.parameters.comfortable_backward_kmh", math.nan),
            r"session\.parameters\.comfortable_backward_kmh: ",
        ),
        (_broken("phases.0.speed_kmh", math.inf), r"phases\.0\.speed_kmh: "),
        (_broken("events.0.details", {"speed": math.nan}), r"events\.0\.details\.speed: "),
        (_broken("session.id", "s-\x00"), r"session\.id: NUL characters are not allowed"),
        (_broken("session.end_detail", "\x00"), r"session\.end_detail: NUL characters are"),
        (_broken("events.0.type", "paused\x00"), r"events\.0\.type: NUL characters are"),
    ],
)
def test_a_malformed_record_names_the_field_and_stores_nothing(
    database: Database, document: Any, message: str
) -> None:
    with pytest.raises(FormError, match=message):
        _store(database, document)
    assert _count(database) == 0
