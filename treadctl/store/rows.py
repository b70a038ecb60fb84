"""What the writer thread writes: one record per recording call, the SQL that stores it, and the
closing of sessions a crash left open; and the deleting of a person's sessions (the CLI's).

The records carry the model's own shapes (`SessionRecord`, `PhaseRecord`, `EventRecord`,
`Sample`) with the session they belong to; only the writer thread touches a connection here.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from treadctl.store.model import (
    SAMPLE_COLUMNS,
    SESSION_COLUMNS,
    EndedHow,
    EventRecord,
    PhaseRecord,
    Sample,
    SessionRecord,
)
from treadctl.store.queries import load_samples, summarise

# The columns a session has when it starts: the rest are written when it ends.
_STARTED_COLUMNS = (*SESSION_COLUMNS[: SESSION_COLUMNS.index("started") + 1], "person")
_INSERT_SAMPLE = (
    f"INSERT INTO samples (session_id, {', '.join(SAMPLE_COLUMNS)})"  # noqa: S608 - constants
    f" VALUES ({', '.join('?' * (len(SAMPLE_COLUMNS) + 1))})"
)


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session: SessionRecord  # not ended yet


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    session_id: str
    phase: PhaseRecord  # not ended yet


@dataclass(frozen=True, slots=True)
class Logged:
    session_id: str | None  # None for an event outside any session
    event: EventRecord


@dataclass(frozen=True, slots=True)
class Sampled:
    session_id: str
    sample: Sample


@dataclass(frozen=True, slots=True)
class SessionEnded:
    session_id: str
    ended: float
    how: EndedHow
    cause: str | None
    detail: str | None
    summary: dict[str, Any] | None  # adds to (or corrects) summarise()'s figures


Record = SessionStarted | PhaseStarted | Logged | Sampled | SessionEnded


def _json(value: object) -> str:
    return json.dumps(value, default=str)


def insert_session(conn: sqlite3.Connection, session: SessionRecord, *, replay: bool) -> None:
    """`replay`: the session may be there already (written again into a replaced file)."""
    verb = "INSERT OR IGNORE" if replay else "INSERT"
    values = [getattr(session, column) for column in _STARTED_COLUMNS]
    values[_STARTED_COLUMNS.index("parameters")] = _json(session.parameters)
    conn.execute(
        f"{verb} INTO sessions ({', '.join(_STARTED_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(_STARTED_COLUMNS))})",
        values,
    )


def _close_phases(conn: sqlite3.Connection, session_id: str, at: float) -> None:
    conn.execute(
        "UPDATE phases SET ended = MAX(started, ?) WHERE session_id = ? AND ended IS NULL",
        (at, session_id),
    )


def _end_session(conn: sqlite3.Connection, rec: SessionEnded) -> bool:
    _close_phases(conn, rec.session_id, rec.ended)
    # The stored summary always has summarise()'s figures; the caller's keys add to or correct them.
    summary = summarise(load_samples(conn, rec.session_id)).as_dict() | (rec.summary or {})
    cursor = conn.execute(
        "UPDATE sessions SET ended = ?, ended_how = ?, end_cause = ?, end_detail = ?,"
        " summary = ? WHERE id = ? AND ended IS NULL",
        (rec.ended, rec.how, rec.cause, rec.detail, _json(summary), rec.session_id),
    )
    return cursor.rowcount == 1


def apply(conn: sqlite3.Connection, rec: Record) -> bool:
    """Write one record; False when it names a session that is not there (or already ended)."""
    match rec:
        case Sampled(session_id=sid, sample=s):
            conn.execute(_INSERT_SAMPLE, (sid, *(getattr(s, c) for c in SAMPLE_COLUMNS)))
        case SessionStarted(session=session):
            insert_session(conn, session, replay=False)
        case PhaseStarted(session_id=sid, phase=p):
            _close_phases(conn, sid, p.started)
            conn.execute(
                "INSERT INTO phases (session_id, idx, label, walk, belt, speed_kmh,"
                " incline_pct, planned_s, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    p.index,
                    p.label,
                    p.walk,
                    p.belt,
                    p.speed_kmh,
                    p.incline_pct,
                    p.planned_s,
                    p.started,
                ),
            )
        case Logged(session_id=sid, event=e):
            conn.execute(
                "INSERT INTO events (session_id, ts, type, details) VALUES (?, ?, ?, ?)",
                (sid, e.ts, e.type, _json(e.details)),
            )
        case SessionEnded():
            return _end_session(conn, rec)
    return True


_CRASH_DETAIL = (
    "treadctl stopped without closing the session; closed at its last sample when it started again"
)


def recover_interrupted(conn: sqlite3.Connection, device_id: str | None = None) -> list[str]:
    """Close the sessions a crashed daemon left open: interrupted at their last sample.

    With `device_id`, only that device's: another device's daemon sharing the file may be
    running a session right now."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        open_sessions = conn.execute(
            "SELECT id, started FROM sessions WHERE ended IS NULL AND (? IS NULL OR device_id = ?)"
            " ORDER BY started",
            (device_id, device_id),
        ).fetchall()
        for session_id, started in open_sessions:
            samples = load_samples(conn, session_id)
            ended = max((s.ts for s in samples), default=started)
            _close_phases(conn, session_id, ended)
            conn.execute(
                "UPDATE sessions SET ended = ?, ended_how = 'interrupted', end_cause = 'crash',"
                " end_detail = ?, summary = ? WHERE id = ?",
                (
                    ended,
                    _CRASH_DETAIL,
                    _json(summarise(samples).as_dict()),
                    session_id,
                ),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return [str(row[0]) for row in open_sessions]


@dataclass(frozen=True, slots=True)
class PersonDeleted:
    deleted: list[str]  # the ids deleted, with their phases, events and samples
    still_open: list[str]  # the person's sessions left because they have not ended
    checkpointed: bool  # the write-ahead log was emptied into the file (no reader in the way)


def delete_person(conn: sqlite3.Connection, person: str) -> PersonDeleted:
    """Delete the ended sessions of `person` with their phases, events and samples.

    An open session may be running right now (its daemon goes on writing into it), or was left
    by a crash and is closed when its daemon starts again; it can be deleted then. The
    connection must be open_writer's (autocommit, foreign keys on: the cascade removes the
    phases, events and samples). secure_delete overwrites the freed pages with zeros, and the
    checkpoint moves that into the file and empties the write-ahead log, unless a reader (the
    daemon's writer included) is in the way: the daemon's own checkpoints do it later then.
    """
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute(
            "SELECT id, ended IS NULL FROM sessions WHERE person = ? ORDER BY started, id",
            (person,),
        ).fetchall()
        deleted = [str(sid) for sid, still_open in found if not still_open]
        still_open = [str(sid) for sid, open_ in found if open_]
        conn.executemany("DELETE FROM sessions WHERE id = ?", [(sid,) for sid in deleted])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    return PersonDeleted(deleted, still_open, checkpointed=busy == 0)
