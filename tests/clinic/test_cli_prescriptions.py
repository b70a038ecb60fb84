"""`treadctl prescriptions …` on a real SQLite file: a prescription is checked against its
program and the person's limits before it is stored; a weekly step is proposed from the sessions
the daemons sent and changes the prescription only once approved."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from clinic.documents import session_document, store_sessions
from clinic.test_cli_people import Clinic
from treadctl.cli_support import ExitCode

PROGRAM = "alghadir2019-knee-oa"
PLAN = ("--per-week", "3", "--weeks", "4")


@pytest.fixture
def clinic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Clinic:
    return Clinic(f"sqlite:///{tmp_path}/clinic.db", capsys)


def next_monday() -> date:
    """Sessions are stored after the prescription is made, as they are walked: in a week to come."""
    today = date.today()  # noqa: DTZ011 - the commands' own default day
    return today + timedelta(days=7 - today.weekday())


def at_ten(day: date) -> datetime:
    return datetime.combine(day, time(10), UTC)


def add_person(clinic: Clinic, *limits: str) -> None:
    args = [item for limit in limits for item in ("--limit", limit)]
    clinic.ok("people", "add", "mrs-k", "--param", "comfortable_backward_kmh=1.2", *args)


def test_add_list_show_and_end(clinic: Clinic) -> None:
    add_person(clinic, "max_speed_backward_kmh=2.5")
    made = clinic.ok("prescriptions", "add", "mrs-k", PROGRAM, *PLAN, "--start", "2026-11-02")
    assert made.startswith(
        f"prescription 1: mrs-k, {PROGRAM} comfortable_backward_kmh=1.2, "  # the saved value
        "3/week x 4 weeks from 2026-11-02, active"
    )
    assert "no progression rule" in made
    clinic.ok(
        "prescriptions", "add", "mrs-k", PROGRAM, *PLAN, "--param", "comfortable_backward_kmh=1.5"
    )
    listed = clinic.json("prescriptions", "list", "mrs-k")
    # a new prescription ends the earlier one
    assert [(p["id"], p["ended"] is None) for p in listed] == [(1, False), (2, True)]
    assert listed[1]["parameters"] == {"comfortable_backward_kmh": 1.5}
    assert listed[1]["start_date"] == date.today().isoformat()  # noqa: DTZ011
    shown = clinic.ok("prescriptions", "show", "2")
    assert "prescription 2: mrs-k" in shown
    assert "sessions: none" in shown
    assert "progression steps: none" in shown
    ended = clinic.ok("prescriptions", "end", "2")
    assert "ended" in ended
    assert all(p["ended"] for p in clinic.json("prescriptions", "list"))
    unknown = clinic("prescriptions", "show", "9")
    assert unknown.code == ExitCode.FAILURE
    assert "prescription 9: no such prescription" in unknown.err
    assert clinic("prescriptions", "end", "9").code == ExitCode.FAILURE
    assert clinic("prescriptions", "list", "nobody").code == ExitCode.FAILURE


def test_a_program_the_persons_limits_forbid_is_refused_naming_the_limit(clinic: Clinic) -> None:
    add_person(clinic, "max_speed_backward_kmh=1.0")
    refused = clinic("prescriptions", "add", "mrs-k", PROGRAM, *PLAN)
    assert refused.code == ExitCode.FAILURE
    assert "max_speed_backward_kmh" in refused.err
    assert "1.2 km/h exceeds the person's limit" in refused.err
    assert clinic.json("prescriptions", "list") == []
    # a slower comfortable speed fits
    clinic.ok(
        "prescriptions", "add", "mrs-k", PROGRAM, *PLAN, "--param", "comfortable_backward_kmh=0.9"
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((PROGRAM, "--per-week", "30", "--weeks", "4"), "sessions_per_week"),
        (
            (PROGRAM, *PLAN, "--param", "comfortable_backward_kmh=9"),
            "parameters.comfortable_backward_kmh",
        ),
        ((PROGRAM, *PLAN, "--param", "speed=1"), "parameters.speed"),
        (("no-such-program", *PLAN), "program: unknown program 'no-such-program'"),
        ((PROGRAM, *PLAN, "--progression", "--step-pct", "50"), "progression.step_pct"),
        ((PROGRAM, *PLAN, "--progression", "speed"), "progression.parameter"),
        ((PROGRAM, *PLAN, "--pain-rise", "3"), "--pain-rise need --progression"),
        ((PROGRAM, "--per-week", "0", "--weeks", "4"), "--per-week"),
        ((PROGRAM, *PLAN, "--start", "2026-13-01"), "--start"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    clinic: Clinic, args: tuple[str, ...], field: str
) -> None:
    add_person(clinic)
    result = clinic("prescriptions", "add", "mrs-k", *args)
    assert result.code == ExitCode.USAGE
    assert field in result.err
    assert clinic.json("prescriptions", "list") == []


def test_unknown_and_archived_people_are_refused(clinic: Clinic) -> None:
    unknown = clinic("prescriptions", "add", "nobody", PROGRAM, *PLAN)
    assert unknown.code == ExitCode.FAILURE
    assert "'nobody': no such person" in unknown.err
    add_person(clinic)
    clinic.ok("people", "archive", "mrs-k")
    archived = clinic("prescriptions", "add", "mrs-k", PROGRAM, *PLAN)
    assert archived.code == ExitCode.FAILURE
    assert "archived" in archived.err
    assert clinic.json("prescriptions", "list") == []


def first_week_walked(clinic: Clinic, limit: str, *rule: str) -> date:
    """Mrs K. with `limit`, a prescription with a progression rule from next Monday, and the
    three sessions of its first week; that Monday."""
    add_person(clinic, limit)
    monday = next_monday()
    start = ("--start", monday.isoformat())
    clinic.ok("prescriptions", "add", "mrs-k", PROGRAM, *PLAN, *start, "--progression", *rule)
    days = (monday + timedelta(days=n) for n in range(3))
    store_sessions(clinic.url, *(session_document(f"w1-{d:%a}", started=at_ten(d)) for d in days))
    return monday


def test_a_complete_week_proposes_a_step_that_takes_effect_once_approved(clinic: Clinic) -> None:
    monday = first_week_walked(clinic, "max_speed_backward_kmh=2.5")
    assert "no complete week" in clinic.ok(
        "prescriptions", "propose", "--today", monday.isoformat()
    )
    week_later = (monday + timedelta(days=7)).isoformat()
    proposed = clinic.ok("prescriptions", "propose", "--today", week_later)
    assert (
        f"step 1: prescription 1, week of {monday}: increase comfortable_backward_kmh 1.2 -> 1.3"
        in proposed
    )
    assert "[pending]" in proposed
    assert "no complete week" in clinic.ok("prescriptions", "propose", "--today", week_later)
    assert [s["id"] for s in clinic.json("prescriptions", "steps", "mrs-k", "--pending")] == [1]
    assert "pending steps:\n  step 1:" in clinic.ok("people", "show", "mrs-k")
    # nothing changes until a therapist approves
    assert clinic.json("prescriptions", "list")[0]["parameters"] == {
        "comfortable_backward_kmh": 1.2
    }
    approved = clinic.ok("prescriptions", "approve", "1", "--by", "therapist-a")
    assert "[approved by therapist-a]" in approved
    assert clinic.json("prescriptions", "list")[0]["parameters"] == {
        "comfortable_backward_kmh": 1.3
    }
    assert clinic.json("prescriptions", "steps", "--pending") == []
    again = clinic("prescriptions", "approve", "1", "--by", "therapist-a")
    assert again.code == ExitCode.FAILURE
    assert "approved already" in again.err

    # week 2: pain rose by 2 points after one session: hold, and the therapist rejects it
    week2 = monday + timedelta(days=7)
    store_sessions(
        clinic.url,
        *(
            session_document(f"w2-{n}", started=at_ten(week2 + timedelta(days=n)), speed_kmh=1.3)
            for n in range(3)
        ),
    )
    clinic.ok("annotate", "w2-1", "--pain-before", "2", "--pain-after", "4")
    held = clinic.ok("prescriptions", "propose", "--today", (week2 + timedelta(days=7)).isoformat())
    assert "step 2: prescription 1" in held
    assert "hold comfortable_backward_kmh stays 1.3 (pain rose by 2 points" in held
    clinic.ok("prescriptions", "reject", "2", "--by", "therapist-b")
    steps = clinic.json("prescriptions", "steps", "mrs-k")
    assert [(s["status"], s["decided_by"]) for s in steps] == [
        ("approved", "therapist-a"),
        ("rejected", "therapist-b"),
    ]
    shown = clinic.ok("prescriptions", "show", "1")
    assert "sessions (6):" in shown
    assert "[rejected by therapist-b]" in shown


def test_a_step_is_capped_by_the_persons_limits(clinic: Clinic) -> None:
    monday = first_week_walked(clinic, "max_speed_backward_kmh=1.3", "--step-pct", "25")
    proposed = clinic.ok(
        "prescriptions", "propose", "--today", (monday + timedelta(days=7)).isoformat()
    )
    assert "1.2 -> 1.3" in proposed
    assert "capped at 1.3 by the limits" in proposed


def test_an_approval_is_checked_against_the_limits_as_they_are_now(clinic: Clinic) -> None:
    monday = first_week_walked(clinic, "max_speed_backward_kmh=2.5")
    clinic.ok("prescriptions", "propose", "--today", (monday + timedelta(days=7)).isoformat())
    clinic.ok("people", "edit", "mrs-k", "--limit", "max_speed_backward_kmh=1.25")
    refused = clinic("prescriptions", "approve", "1", "--by", "therapist-a")
    assert refused.code == ExitCode.FAILURE
    assert "max_speed_backward_kmh" in refused.err
    assert clinic.json("prescriptions", "list")[0]["parameters"] == {
        "comfortable_backward_kmh": 1.2
    }
    assert [s["status"] for s in clinic.json("prescriptions", "steps")] == ["pending"]
    clinic.ok("prescriptions", "reject", "1", "--by", "therapist-a")


def test_deciding_needs_a_known_step_and_who_decides(clinic: Clinic) -> None:
    unknown = clinic("prescriptions", "approve", "7", "--by", "therapist-a")
    assert unknown.code == ExitCode.FAILURE
    assert "step 7: no such progression step" in unknown.err
    nobody = clinic("prescriptions", "reject", "7", "--by", " ")
    assert nobody.code == ExitCode.USAGE
    assert "--by" in nobody.err
