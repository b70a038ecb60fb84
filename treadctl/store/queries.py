"""Reading sessions back (the CLI, exports, plots) and summarising their samples."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from treadctl.store.model import (
    SAMPLE_COLUMNS,
    SESSION_COLUMNS,
    EventRecord,
    PhaseRecord,
    Sample,
    SessionDetail,
    SessionRecord,
)
from treadctl.store.schema import StoreError, open_readonly

__all__ = [
    "Summary",
    "UnknownSessionError",
    "get_session",
    "list_sessions",
    "load_samples",
    "open_readonly",
    "resolve_id",
    "sample_rows",
    "summarise",
]

_SESSION_SELECT = f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"  # noqa: S608 - constants
_SAMPLE_SELECT = f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples"  # noqa: S608


class UnknownSessionError(StoreError):
    """No session (or more than one) matches the id or prefix given."""


@dataclass(frozen=True, slots=True)
class Summary:
    duration_s: float  # session time on the belt (the controller's elapsed, pauses excluded)
    distance_m: float
    backward_s: float  # time walking backward with the belt moving
    heart_rate_avg_bpm: int | None  # time-weighted
    heart_rate_peak_bpm: int | None
    samples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _heart_rate_avg(samples: Sequence[Sample]) -> int | None:
    """Time-weighted like the controller's: each reading counts until the next sample."""
    weighted = seconds = 0.0
    for before, after in pairwise(samples):
        if before.heart_rate_bpm is not None:
            dt = max(0.0, after.elapsed_s - before.elapsed_s)
            weighted += before.heart_rate_bpm * dt
            seconds += dt
    if seconds > 0:
        return round(weighted / seconds)
    rates = [s.heart_rate_bpm for s in samples if s.heart_rate_bpm is not None]
    return round(sum(rates) / len(rates)) if rates else None


def summarise(samples: Sequence[Sample]) -> Summary:
    """Figures of a session from its samples (in time order); the keys of the controller's
    `session_finished` summary, so a session closed by crash recovery reads like any other."""
    backward = 0.0
    for before, after in pairwise(samples):
        # each interval is credited to the state at its start; elapsed_s, not ts, so pauses and
        # an accelerated demo clock count as the session's own time
        if before.walk == "backward" and before.speed_kmh > 0:
            backward += max(0.0, after.elapsed_s - before.elapsed_s)
    rates = [s.heart_rate_bpm for s in samples if s.heart_rate_bpm is not None]
    return Summary(
        duration_s=max((s.elapsed_s for s in samples), default=0.0),
        distance_m=max((s.distance_m for s in samples), default=0.0),
        backward_s=round(backward, 3),
        heart_rate_avg_bpm=_heart_rate_avg(samples),
        heart_rate_peak_bpm=max(rates) if rates else None,
        samples=len(samples),
    )


def list_sessions(
    conn: sqlite3.Connection,
    *,
    since: datetime | None = None,
    program: str | None = None,
    person: str | None = None,
) -> list[SessionRecord]:
    """Sessions in start order, optionally from `since` on, of one program, of one person."""
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("started >= ?")
        params.append(since.timestamp())
    if program is not None:
        clauses.append("program = ?")
        params.append(program)
    if person is not None:
        clauses.append("person = ?")
        params.append(person)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(f"{_SESSION_SELECT}{where} ORDER BY started, id", params).fetchall()
    return [SessionRecord.from_row(row) for row in rows]


def resolve_id(conn: sqlite3.Connection, prefix: str) -> str:
    """The one session whose id is `prefix` or starts with it."""
    if not prefix:
        raise UnknownSessionError("a session id (or its unique beginning) is needed")
    exact = conn.execute("SELECT id FROM sessions WHERE id = ?", (prefix,)).fetchone()
    if exact:
        return str(exact[0])
    ids = [
        str(row[0])
        for row in conn.execute(
            "SELECT id FROM sessions WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
            (len(prefix), prefix),
        )
    ]
    if not ids:
        raise UnknownSessionError(f"no session {prefix!r}")
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
        raise UnknownSessionError(f"{prefix!r} matches several sessions: {shown}")
    return ids[0]


def get_session(conn: sqlite3.Connection, session_id: str) -> SessionDetail:
    row = conn.execute(f"{_SESSION_SELECT} WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise UnknownSessionError(f"no session {session_id!r}")
    phases = [
        PhaseRecord(*r)
        for r in conn.execute(
            "SELECT idx, label, walk, belt, speed_kmh, incline_pct, planned_s, started, ended"
            " FROM phases WHERE session_id = ? ORDER BY started, rowid",
            (session_id,),
        )
    ]
    events = [
        EventRecord(ts, type_, json.loads(details))
        for ts, type_, details in conn.execute(
            "SELECT ts, type, details FROM events WHERE session_id = ? ORDER BY ts, rowid",
            (session_id,),
        )
    ]
    return SessionDetail(SessionRecord.from_row(row), phases, events)


def load_samples(conn: sqlite3.Connection, session_id: str) -> list[Sample]:
    return [Sample(*row) for rows in sample_rows(conn, session_id) for row in rows]


def sample_rows(
    conn: sqlite3.Connection, session_id: str, *, batch: int = 1000
) -> Iterator[list[tuple[Any, ...]]]:
    """The session's samples in time order as plain rows (SAMPLE_COLUMNS), `batch` at a time."""
    cursor = conn.execute(
        f"{_SAMPLE_SELECT} WHERE session_id = ? ORDER BY ts, rowid", (session_id,)
    )
    while rows := cursor.fetchmany(batch):
        yield rows
