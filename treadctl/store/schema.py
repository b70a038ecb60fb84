"""The session database's schema, its migrations and how connections are opened.

`PRAGMA user_version` is the schema version: migration N (1-based) brings a database from
version N-1 to N, in one transaction together with the version bump, so a crash mid-migration
leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 5000

ENDED_HOW = ("finished", "stopped", "estop", "fault", "interrupted")

_V1 = (
    f"""
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        driver TEXT NOT NULL,
        program TEXT NOT NULL,
        parameters TEXT NOT NULL DEFAULT '{{}}',
        plan_sessions_per_week INTEGER,
        plan_weeks INTEGER,
        planned_s REAL,
        started REAL NOT NULL,
        ended REAL,
        ended_how TEXT CHECK (ended_how IN {ENDED_HOW!r}),
        end_cause TEXT,
        end_detail TEXT,
        summary TEXT
    )
    """,
    "CREATE INDEX sessions_started ON sessions (started)",
    """
    CREATE TABLE phases (
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        label TEXT NOT NULL,
        walk TEXT NOT NULL CHECK (walk IN ('forward', 'backward')),
        belt TEXT NOT NULL CHECK (belt IN ('forward', 'reverse')),
        speed_kmh REAL NOT NULL,
        incline_pct REAL NOT NULL,
        planned_s REAL,
        started REAL NOT NULL,
        ended REAL
    )
    """,
    "CREATE INDEX phases_session ON phases (session_id, started)",
    """
    CREATE TABLE events (
        session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX events_session ON events (session_id, ts)",
    """
    CREATE TABLE samples (
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        elapsed_s REAL NOT NULL,
        speed_kmh REAL NOT NULL,
        belt TEXT NOT NULL,
        walk TEXT NOT NULL,
        incline_pct REAL NOT NULL,
        target_kmh REAL NOT NULL,
        distance_m REAL NOT NULL,
        heart_rate_bpm INTEGER,
        phase_index INTEGER,
        mode TEXT NOT NULL
    )
    """,
    "CREATE INDEX samples_session_ts ON samples (session_id, ts)",
)

# Who walked: the pseudonymous id of core/person.py (never a name), NULL when none was given
# and for every session recorded before version 2.
_V2 = (
    """
    ALTER TABLE sessions ADD COLUMN person TEXT CHECK (
        person IS NULL OR (length(person) BETWEEN 1 AND 32 AND person NOT GLOB '*[^a-z0-9-]*')
    )
    """,
    "CREATE INDEX sessions_person ON sessions (person, started)",
)

# When the clinic service acknowledged the session's record (Unix time; docs/mqtt.md, "Session
# records for the clinic service"); NULL until then, and for every session recorded before
# version 3, which the daemon therefore sends once a clinic service is online. Nothing is deleted
# on an ack: the daemon keeps its own records.
_V3 = (
    "ALTER TABLE sessions ADD COLUMN delivered REAL",
    """
    CREATE INDEX sessions_undelivered ON sessions (device_id, started)
        WHERE delivered IS NULL AND ended IS NOT NULL
    """,
)

# Append only; never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The session database cannot be used as it is; the message names the file."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _too_new(path: Path, version: int) -> StoreError:
    return StoreError(
        f"{path}: session database has schema version {version}, newer than this treadctl "
        f"knows ({SCHEMA_VERSION}); upgrade treadctl, or point storage.path at another file"
    )


def _checked_version(conn: sqlite3.Connection, path: Path) -> int:
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise _too_new(path, version)
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to SCHEMA_VERSION; returns how many migrations ran.

    The connection must be in autocommit mode (isolation_level=None): each migration is its own
    explicit transaction. BEGIN IMMEDIATE takes the write lock before reading the version, so two
    processes opening a new file at once cannot both migrate it.
    """
    applied = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _checked_version(conn, path)
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return applied
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
            applied += 1
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _not_a_database(path: Path, exc: sqlite3.DatabaseError) -> StoreError | None:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
        return StoreError(f"{path}: not an SQLite database (is storage.path right?)")
    return None


def open_writer(path: Path) -> sqlite3.Connection:
    """The read-write connection: created (with its directory) and migrated if needed.

    Autocommit mode, so the writer issues BEGIN/COMMIT itself; usable from another thread than
    the one that opened it (the store opens it in a worker and hands it to its writer thread).
    Raises StoreError for a file it must not touch, sqlite3.Error/OSError for I/O trouble.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")  # readers (the CLI) never block the writer
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, fast
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        error = _not_a_database(path, exc)
        if error is not None:
            raise error from exc
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection for queries (never creates or migrates the file)."""
    if not path.is_file():
        raise StoreError(f"{path}: no session database here (has a session been recorded yet?)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the session database: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _not_a_database(path, exc) or StoreError(
            f"{path}: cannot read the session database: {exc}"
        ) from exc
    if version != SCHEMA_VERSION:
        conn.close()
        if version > SCHEMA_VERSION:
            raise _too_new(path, version)
        if version == 0:
            raise StoreError(f"{path}: not a treadctl session database (it has no schema)")
        raise StoreError(
            f"{path}: session database has the older schema version {version}; "
            "start the daemon once to upgrade it"
        )
    return conn
