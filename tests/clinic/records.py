"""PersonRecord values built by hand for the report and export tests: Mrs K. (pseudonym p-0042),
six sessions over three weeks of a 3/week × 4 weeks prescription, and a person with nothing yet.

Sessions start at 10:00 UTC, so their dates read the same in any time zone the tests run in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from treadctl.clinic.views import (
    AdherenceWeek,
    AdverseEvent,
    Annotation,
    Deviation,
    Measure,
    Person,
    PersonRecord,
    Prescription,
    ProgressionRule,
    ProgressionStep,
    SessionDose,
)

PSEUDONYM = "p-0042"
NAME = "Anna Kowalska"
START = date(2026, 11, 2)  # a Monday
GENERATED = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)  # Thursday of week 3
SCRIPT_NOTE = "<script>alert('x')</script> felt fine"
FALL_TEXT = 'tripped at the rail & caught herself <b>"safe"</b>'

PERSON = Person(
    id=PSEUDONYM,
    name=NAME,
    notes=f"{NAME}: lives alone, knee replacement 2025",
    limits={"max_speed_backward_kmh": 2.5, "heart_rate_max_bpm": 130},
    parameters={"comfortable_backward_kmh": 1.5},
    created=datetime(2026, 10, 30, 9, 0, tzinfo=UTC),
)
PRESCRIPTION = Prescription(
    id=7,
    person_id=PSEUDONYM,
    program="backward-30",
    parameters={"comfortable_backward_kmh": 1.5},
    sessions_per_week=3,
    weeks=4,
    start_date=START,
    progression=ProgressionRule(),
    created=datetime(2026, 10, 30, 9, 5, tzinfo=UTC),
)


def _session(
    n: int,
    day_offset: int,
    speed: float,
    *,
    backward_min: float = 30.0,
    ended_how: str = "finished",
    end_cause: str | None = None,
    deviations: tuple[Deviation, ...] = (),
    annotation: Annotation | None = None,
) -> SessionDose:
    started = datetime.combine(START + timedelta(days=day_offset), datetime.min.time(), UTC)
    started += timedelta(hours=10)
    duration = backward_min * 60 + 120  # two minutes forward to warm up
    return SessionDose(
        id=f"s-{n:02d}",
        device_id="tm-1" if n % 2 else "tm-2",
        person_id=PSEUDONYM,
        program="backward-30",
        parameters={"comfortable_backward_kmh": speed},
        started=started,
        ended=started + timedelta(seconds=duration + 30),
        ended_how=ended_how,
        end_cause=end_cause,
        planned_s=1920.0,
        duration_s=duration,
        backward_s=backward_min * 60,
        distance_m=round(speed / 3.6 * backward_min * 60 + 80, 1),
        speed_backward_avg_kmh=speed,
        speed_max_kmh=speed + 0.1,
        heart_rate_avg_bpm=95 + n,
        heart_rate_peak_bpm=110 + n,
        prescription_id=PRESCRIPTION.id,
        deviations=deviations,
        annotation=annotation,
    )


SESSIONS = (
    _session(1, 0, 1.5, annotation=Annotation(2, 2, 11, "therapist-a")),
    _session(
        2,
        2,
        1.5,
        deviations=(Deviation("pause", 300.0, "operator"),),
        annotation=Annotation(2, 3, 12, "therapist-a", "asked for a short break"),
    ),
    _session(3, 4, 1.6, annotation=Annotation(1, 1, 12, "therapist-b")),
    _session(
        4,
        7,
        1.65,
        backward_min=10.2,
        ended_how="estop",
        end_cause="button",
        deviations=(Deviation("estop", 612.0, "button"),),
        annotation=Annotation(
            3,
            5,
            15,
            "therapist-a",
            SCRIPT_NOTE,
            (AdverseEvent("fall", FALL_TEXT),),
        ),
    ),
    _session(5, 9, 1.65, annotation=Annotation(3, 3, 13, "therapist-b")),
    _session(6, 14, 1.8),  # not annotated yet
)
MEASURES = (
    Measure(1, PSEUDONYM, "Timed Up and Go", 12.1, "s", START),
    Measure(2, PSEUDONYM, "10 m walk speed", 0.9, "m/s", START),
    Measure(3, PSEUDONYM, "Berg", 48, "points", START, "baseline"),
    Measure(4, PSEUDONYM, "Timed Up and Go", 11.0, "s", START + timedelta(days=14)),
    Measure(5, PSEUDONYM, "10 m walk speed", 1.0, "m/s", START + timedelta(days=14)),
)
STEPS = (
    ProgressionStep(
        1,
        PRESCRIPTION.id,
        START,
        "increase",
        "comfortable_backward_kmh",
        1.5,
        1.65,
        "pain steady, all sessions complete",
        "approved",
        datetime(2026, 11, 9, 8, 0, tzinfo=UTC),
        "therapist-a",
        datetime(2026, 11, 9, 8, 30, tzinfo=UTC),
    ),
    ProgressionStep(
        2,
        PRESCRIPTION.id,
        START + timedelta(days=7),
        "step_back",
        "comfortable_backward_kmh",
        1.65,
        1.49,
        "pain rose by 2 and a session ended early",
        "rejected",
        datetime(2026, 11, 16, 8, 0, tzinfo=UTC),
        "dr-b",
        datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
    ),
)
ADHERENCE = (
    AdherenceWeek(START, 3, 3, complete=True, backward_min=90.0),
    AdherenceWeek(START + timedelta(days=7), 2, 3, complete=True, backward_min=40.2),
    AdherenceWeek(START + timedelta(days=14), 1, 3, complete=False, backward_min=30.0),
)


def mrs_k() -> PersonRecord:
    return PersonRecord(
        person=PERSON,
        prescriptions=(PRESCRIPTION,),
        sessions=SESSIONS,
        measures=MEASURES,
        steps=STEPS,
        adherence=ADHERENCE,
        generated=GENERATED,
        devices=("tm-1", "tm-2"),
    )


def newcomer() -> PersonRecord:
    """Created today, no prescription, no sessions, no measures."""
    person = Person("p-0099", "Jan Nowak", "", {}, {}, GENERATED)
    return PersonRecord(person, (), (), (), (), (), GENERATED)
