"""Adherence: sessions per ISO week (Monday to Sunday) against a program's plan.

Which sessions count is decided by `counts_toward_plan`: a finished session, or any other that
ran at least half its planned time (so an interrupted or stopped session that did most of the
work still counts). The window starts with the week of the first counted session and runs for
the plan's weeks, cut at the current week while the plan is in progress. A week is short only
once it is over. Sessions beyond a week's target do not make up for another week: the plan
asks for N a week, not N×weeks in all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from treadctl.core.program import Plan
from treadctl.store.model import SessionRecord

MIN_FRACTION_OF_PLANNED = 0.5


def counts_toward_plan(session: SessionRecord) -> bool:
    if session.ended is None:
        return False  # still running (or the daemon has not recovered it yet)
    if session.ended_how == "finished":
        return True
    duration = session.duration_s
    return bool(
        session.planned_s
        and duration is not None
        and duration >= MIN_FRACTION_OF_PLANNED * session.planned_s
    )


@dataclass(frozen=True, slots=True)
class Week:
    start: date  # its Monday
    sessions: int
    target: int
    complete: bool  # the week is over (today is after its Sunday)

    @property
    def iso(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def short(self) -> bool:
        return self.complete and self.sessions < self.target


@dataclass(frozen=True, slots=True)
class Adherence:
    sessions_per_week: int
    plan_weeks: int
    weeks: tuple[Week, ...]  # from the first session's week; empty without sessions
    after_plan: int  # counted sessions after the plan's last week

    @property
    def short_weeks(self) -> tuple[Week, ...]:
        return tuple(w for w in self.weeks if w.short)

    @property
    def in_progress(self) -> bool:
        return not self.weeks or len(self.weeks) < self.plan_weeks or not self.weeks[-1].complete

    @property
    def done(self) -> int:
        """Sessions that count, each week's capped at its target."""
        return sum(min(w.sessions, w.target) for w in self.weeks if w.complete)

    @property
    def due(self) -> int:
        return sum(w.target for w in self.weeks if w.complete)

    @property
    def fraction(self) -> float | None:
        """done/due over the complete weeks; None before the first week is over."""
        return self.done / self.due if self.due else None


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def adherence(
    sessions: Iterable[tuple[datetime, str]],
    plan: Plan,
    *,
    program: str | None = None,
    today: date | None = None,
    tz: tzinfo | None = None,
) -> Adherence:
    """Weekly counts of `sessions` (their start and program; already filtered to those that
    count) against `plan`. Only `program`'s sessions when given. Weeks are in `tz` (the local
    zone by default); naive datetimes are taken as already in that zone."""
    days = sorted(
        (started if started.tzinfo is None else started.astimezone(tz)).date()
        for started, name in sessions
        if program is None or name == program
    )
    if not days:
        return Adherence(plan.sessions_per_week, plan.weeks, (), 0)
    current = _monday(today if today is not None else datetime.now(tz).date())
    first = _monday(days[0])
    weeks: list[Week] = []
    for i in range(plan.weeks):
        start = first + timedelta(weeks=i)
        if start > current:
            break
        count = sum(start <= d < start + timedelta(weeks=1) for d in days)
        weeks.append(Week(start, count, plan.sessions_per_week, complete=start < current))
    end = first + timedelta(weeks=plan.weeks)
    return Adherence(plan.sessions_per_week, plan.weeks, tuple(weeks), sum(d >= end for d in days))
