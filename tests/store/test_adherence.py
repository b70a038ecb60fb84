"""Adherence over a constructed history: ISO weeks, a year boundary, an empty week, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from treadctl.core.program import Plan
from treadctl.store.adherence import adherence, counts_toward_plan
from treadctl.store.model import SessionRecord

BERLIN = ZoneInfo("Europe/Berlin")
PLAN = Plan(sessions_per_week=3, weeks=4)
P = "chang2021-stroke"


def at(text: str, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


HISTORY = [
    # 2026-W52 (Mon 21 Dec): three, as planned
    (at("2026-12-22T10:00"), P),
    (at("2026-12-24T09:30"), P),
    (at("2026-12-26T18:00"), P),
    # 2026-W53 (Mon 28 Dec - Sun 3 Jan): two, across New Year
    (at("2026-12-31T10:00"), P),
    (at("2027-01-02T11:00"), P),
    # 2027-W01 (Mon 4 Jan): none; 00:30 on Monday in Berlin is still Sunday in UTC
    # 2027-W02 (Mon 11 Jan): four; the extra one does not make up for the empty week
    (at("2027-01-11T10:00"), P),
    (at("2027-01-12T10:00"), P),
    (at("2027-01-14T10:00"), P),
    (at("2027-01-16T10:00"), P),
    # after the plan's four weeks
    (at("2027-01-19T10:00"), P),
    # another program: not counted for this one
    (at("2027-01-05T10:00"), "backward-uphill"),
]


def test_a_finished_plan() -> None:
    result = adherence(HISTORY, PLAN, program=P, today=date(2027, 2, 1), tz=BERLIN)
    assert [(w.iso, w.start, w.sessions) for w in result.weeks] == [
        ("2026-W52", date(2026, 12, 21), 3),
        ("2026-W53", date(2026, 12, 28), 2),
        ("2027-W01", date(2027, 1, 4), 0),
        ("2027-W02", date(2027, 1, 11), 4),
    ]
    assert [w.iso for w in result.short_weeks] == ["2026-W53", "2027-W01"]
    assert (result.done, result.due) == (8, 12)  # 3 + 2 + 0 + min(4, 3)
    assert result.fraction == 8 / 12
    assert result.after_plan == 1
    assert not result.in_progress


def test_a_plan_in_progress_stops_at_this_week() -> None:
    result = adherence(HISTORY, PLAN, program=P, today=date(2027, 1, 6), tz=BERLIN)
    assert [w.iso for w in result.weeks] == ["2026-W52", "2026-W53", "2027-W01"]
    this_week = result.weeks[-1]
    assert (this_week.complete, this_week.short) == (False, False)  # not over yet
    assert result.fraction == 5 / 6
    assert result.in_progress


def test_no_complete_week_yet() -> None:
    result = adherence(HISTORY[:1], PLAN, program=P, today=date(2026, 12, 23), tz=BERLIN)
    assert [w.sessions for w in result.weeks] == [1]
    assert result.fraction is None
    assert result.in_progress


def test_weeks_are_taken_in_the_given_time_zone() -> None:
    late = [(at("2027-01-04T00:30"), P)]  # Monday in Berlin, Sunday 23:30 in UTC
    assert adherence(late, PLAN, tz=BERLIN, today=date(2027, 3, 1)).weeks[0].iso == "2027-W01"
    assert adherence(late, PLAN, tz=UTC, today=date(2027, 3, 1)).weeks[0].iso == "2026-W53"
    naive = [(datetime(2027, 1, 4, 0, 30), P)]  # noqa: DTZ001 - naive: already in the zone given
    assert adherence(naive, PLAN, tz=UTC, today=date(2027, 3, 1)).weeks[0].iso == "2027-W01"


def test_no_sessions() -> None:
    result = adherence([], PLAN, today=date(2027, 1, 1))
    assert result.weeks == ()
    assert result.fraction is None


def record(how: str | None, ran_s: float, planned_s: float | None = 1800.0) -> SessionRecord:
    return SessionRecord(
        "x", "treadmill", "sim", P, {}, 3, 4, planned_s, 0.0,
        None if how is None else ran_s + 60, how, None, None,
        {"duration_s": ran_s},
    )  # fmt: skip


def test_which_sessions_count() -> None:
    assert counts_toward_plan(record("finished", 100))  # finished counts whatever its length
    assert counts_toward_plan(record("stopped", 900))  # half the planned time
    assert not counts_toward_plan(record("stopped", 899))
    assert counts_toward_plan(record("interrupted", 1700))  # a crash near the end
    assert not counts_toward_plan(record("estop", 300))
    assert not counts_toward_plan(record(None, 1800))  # still open
    assert not counts_toward_plan(record("stopped", 900, planned_s=None))  # manual
