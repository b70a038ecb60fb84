"""What a person's report says, as plain text: header facts, the summary line and the tables.

The HTML page and the PDF both show exactly this (they only lay it out), so a figure cannot differ
between them. Times are shown in the service's local time zone, named in the header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median

from treadctl.clinic.views import (
    AdherenceWeek,
    PersonRecord,
    Prescription,
    ProgressionRule,
    SessionDose,
)
from treadctl.core.durations import format_clock

DASH = "–"  # an empty cell: nothing recorded


@dataclass(frozen=True, slots=True)
class Table:
    key: str  # the HTML id
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str  # said instead of an empty table
    numeric: frozenset[int] = frozenset()  # columns aligned right


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    person: str  # the pseudonym, or `name (id)` when names were asked for
    generated: str
    timezone: str
    facts: tuple[tuple[str, str], ...]  # (label, text) under the title
    summary: str
    alerts: tuple[str, ...]  # adverse events and early ends, shown in red
    no_sessions: str | None  # said instead of charts when nothing was walked
    tables: tuple[Table, ...]


def local(when: datetime) -> datetime:
    return when.astimezone()


def day(when: date | datetime) -> str:
    return f"{local(when) if isinstance(when, datetime) else when:%a %d %b %Y}"


def moment(when: datetime) -> str:
    return f"{local(when):%d %b %Y %H:%M}"


def number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _cell(value: object) -> str:
    return DASH if value is None or value == "" else str(value)


def _monday(when: date) -> date:
    return when - timedelta(days=when.weekday())


def weeks(record: PersonRecord) -> tuple[AdherenceWeek, ...]:
    """The adherence weeks; for a person without a prescription, their sessions by week (Monday
    in local time) with no target."""
    if record.adherence or not record.sessions:
        return record.adherence
    today = local(record.generated).date()
    counts: dict[date, list[SessionDose]] = {}
    for session in record.sessions:
        counts.setdefault(_monday(local(session.started).date()), []).append(session)
    return tuple(
        AdherenceWeek(
            start=monday,
            sessions=len(done),
            target=0,
            complete=monday + timedelta(days=7) <= today,
            backward_min=sum(s.backward_s for s in done) / 60,
        )
        for monday, done in sorted(counts.items())
    )


def planned_min(record: PersonRecord) -> float | None:
    """Planned minutes a session under the current prescription (the median of its sessions')."""
    chosen = record.prescription
    planned = [
        s.planned_s
        for s in record.sessions
        if s.planned_s and (chosen is None or s.prescription_id in (None, chosen.id))
    ]
    return median(planned) / 60 if planned else None


def current_value(record: PersonRecord) -> tuple[str, float] | None:
    """The progressed parameter's value now: the last approved step's, else the prescription's."""
    chosen = record.prescription
    if chosen is None or chosen.progression is None:
        return None
    name = chosen.progression.parameter
    approved = [
        s for s in record.steps if s.status == "approved" and s.prescription_id == chosen.id
    ]
    if approved:
        return name, approved[-1].new_value
    value = chosen.parameters.get(name)
    return (name, float(value)) if value is not None else None


def _parameters(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(values.items())) or "none"


def _rule(rule: ProgressionRule | None) -> str:
    if rule is None:
        return "none (the dose stays as prescribed)"
    return (
        f"+{rule.step_pct:g} % {rule.parameter} a week; held if pain rises by "
        f"{rule.pain_rise_max} or more, a session ends early or sessions were missed; stepped "
        f"back {rule.step_back_pct:g} % after an adverse event or pain rising in two sessions; "
        "each step approved by a therapist"
    )


def _plan(chosen: Prescription, today: date) -> str:
    week = (today - chosen.start_date).days // 7 + 1
    where = (
        "not started yet"
        if week < 1
        else f"week {week} of {chosen.weeks}"
        if week <= chosen.weeks
        else "plan period over"
    )
    ended = f"; ended {day(chosen.ended)}" if chosen.ended else ""
    return (
        f"{chosen.sessions_per_week}/week × {chosen.weeks} weeks from {day(chosen.start_date)} "
        f"({where}{ended})"
    )


def facts(record: PersonRecord, *, names: bool = False) -> tuple[tuple[str, str], ...]:
    chosen = record.prescription
    today = local(record.generated).date()
    rows: list[tuple[str, str]] = []
    if chosen is None:
        rows.append(("Prescription", "none"))
    else:
        label = "Prescription" if chosen.active else "Prescription (ended)"
        rows += [
            (label, f"#{chosen.id} {chosen.program}: {_parameters(chosen.parameters)}"),
            ("Plan", _plan(chosen, today)),
            ("Progression", _rule(chosen.progression)),
        ]
        if (now := current_value(record)) is not None:
            rows.append(("Current dose", f"{now[0]} {now[1]:g}"))
    rows.append(("Limits", _parameters(record.person.limits)))
    if record.devices:
        rows.append(("Treadmills", ", ".join(record.devices)))
    if names and record.person.notes:  # free text about the person: it may well name them
        rows.append(("Notes", record.person.notes))
    return tuple(rows)


def summary(record: PersonRecord) -> str:
    if not record.sessions:
        return "No sessions recorded yet."
    parts: list[str] = []
    today = local(record.generated).date()
    started = [w for w in record.adherence if w.start <= today]
    if started:
        done = sum(w.sessions for w in started)
        due = sum(w.target for w in started)
        parts.append(f"{done} session{'' if done == 1 else 's'} done of {due} due so far")
        complete = [w for w in started if w.complete]
        target = sum(w.target for w in complete)
        if target:
            met = sum(min(w.sessions, w.target) for w in complete)
            short = sum(w.short for w in complete)
            parts.append(
                f"adherence {100 * met / target:.0f} % over {len(complete)} completed "
                f"week{'s' * (len(complete) != 1)} ({short} short)"
            )
    else:
        parts.append(f"{len(record.sessions)} sessions (no plan to compare with)")
    last = record.sessions[-1]
    ago = (today - local(last.started).date()).days
    parts.append(f"last session {day(last.started)} ({_ago(ago)})")
    events = sum(len(s.annotation.adverse_events) for s in record.sessions if s.annotation)
    parts.append(f"{events or 'no'} adverse event{'s' * (events != 1)}")
    early = sum(s.ended_early for s in record.sessions)
    parts.append(f"{early or 'no'} session{'s' * (early != 1)} ended early")
    return " · ".join(parts) + "."


def _ago(days: int) -> str:
    return "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"


def alerts(record: PersonRecord) -> tuple[str, ...]:
    return tuple(
        f"Adverse event, session {n} ({day(session.started)}): {event.category}"
        for n, session in enumerate(record.sessions, 1)
        for event in (session.annotation.adverse_events if session.annotation else ())
    )


def ended(session: SessionDose) -> str:
    if session.ended is None:
        return "still running (or never closed)"
    how = session.ended_how or "ended"
    return f"{how}: {session.end_cause}" if session.end_cause and how != "finished" else how


def _pain(session: SessionDose) -> str:
    note = session.annotation
    if note is None or (note.pain_before is None and note.pain_after is None):
        return DASH
    return f"{_cell(note.pain_before)} → {_cell(note.pain_after)}"


def _session_row(n: int, session: SessionDose) -> tuple[str, ...]:
    note = session.annotation
    planned = number(session.planned_s / 60) if session.planned_s else DASH
    events = note.adverse_events if note else ()
    return (
        str(n),
        moment(session.started),
        session.device_id,
        session.program,
        f"{planned} / {number(session.duration_s / 60)}",
        number(session.backward_s / 60),
        number(session.distance_m, 0),
        number(session.speed_backward_avg_kmh, 2),
        ended(session),
        _cell(note and note.supervised_by),
        _pain(session),
        _cell(note and note.exertion_borg),
        "; ".join(f"{e.category}: {e.text}" for e in events) or DASH,
        _cell(note and note.notes),
    )


def tables(record: PersonRecord) -> tuple[Table, ...]:
    sessions = record.sessions
    numbered = list(enumerate(sessions, 1))
    return (
        Table(
            "sessions",
            "Sessions",
            (
                "#",
                "Date",
                "Treadmill",
                "Program",
                "Planned / delivered min",
                "Backward min",
                "Distance m",
                "Mean backward km/h",
                "Ended",
                "Supervised by",
                "Pain before → after",
                "Borg",
                "Adverse events",
                "Notes",
            ),
            tuple(_session_row(n, s) for n, s in numbered),
            "No sessions recorded yet.",
            frozenset({0, 4, 5, 6, 7, 11}),
        ),
        Table(
            "deviations",
            "Deviations from the prescription",
            ("#", "Date", "Kind", "At", "Cause"),
            tuple(
                (str(n), day(s.started), d.kind, format_clock(d.at_s), d.cause)
                for n, s in numbered
                for d in s.deviations
            ),
            "No deviations recorded.",
            frozenset({0, 3}),
        ),
        Table(
            "adverse",
            "Adverse events",
            ("#", "Date", "Category", "What happened"),
            tuple(
                (str(n), day(s.started), e.category, e.text)
                for n, s in numbered
                for e in (s.annotation.adverse_events if s.annotation else ())
            ),
            "No adverse events recorded.",
            frozenset({0}),
        ),
        Table(
            "measures",
            "Outcome measures",
            ("Date", "Measure", "Value", "Unit", "Notes"),
            tuple(
                (day(m.measured_on), m.name, f"{m.value:g}", m.unit, _cell(m.notes))
                for m in record.measures
            ),
            "No outcome measures recorded.",
            frozenset({2}),
        ),
        Table(
            "progression",
            "Progression history",
            ("Week of", "Decision", "Change", "Reason", "Status", "Decided by", "Decided"),
            tuple(
                (
                    day(s.week_start),
                    s.decision.replace("_", " "),
                    f"{s.parameter} {s.old_value:g} → {s.new_value:g}",
                    s.reason,
                    s.status,
                    _cell(s.decided_by),
                    day(s.decided) if s.decided else DASH,
                )
                for s in record.steps
            ),
            "No progression steps proposed yet.",
        ),
    )


def _nothing_walked(record: PersonRecord) -> str:
    if record.adherence or record.measures:  # the plan's weeks or the measures still chart
        return "No sessions recorded yet."
    return "No sessions recorded yet: nothing to chart."


def build(record: PersonRecord, *, names: bool = False) -> Report:
    person = record.person.display(names=names)
    return Report(
        title=f"Backward walking dose log: {person}",
        person=person,
        generated=moment(record.generated),
        timezone=local(record.generated).tzname() or "local time",
        facts=facts(record, names=names),
        summary=summary(record),
        alerts=alerts(record),
        no_sessions=None if record.sessions else _nothing_walked(record),
        tables=tables(record),
    )


def measure_names(record: PersonRecord) -> Sequence[str]:
    """Each measure's name once, in the order first taken."""
    return list(dict.fromkeys(m.name for m in record.measures))
