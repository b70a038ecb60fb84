"""Opening the clinic database (SQLite by default, PostgreSQL at scale) and migrating it.

One URL says which: `sqlite:///path/clinic.db` or `postgresql://user@host/db` (psycopg 3 is the
driver either way it is spelled). A new SQLite file is created private to the service's user
(0600 in a 0700 directory): it holds health data. Alembic migrates the schema to the newest
revision on every open; a database migrated by a newer treadctl is refused, never changed.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from treadctl.clinic.location import default_url
from treadctl.extras import CLINIC, MissingExtraError

# Alembic says what it loads at INFO, some of it as it is imported (its plugins), so before
# the import below; the service says itself which migrations ran.
logging.getLogger("alembic").setLevel(logging.WARNING)
try:
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import Engine, create_engine, event, text
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
    from sqlalchemy.orm import Session, sessionmaker
except ModuleNotFoundError as exc:  # the daemon's install has no database layer
    raise MissingExtraError(CLINIC, "the clinic service", exc.name) from exc

MIGRATIONS = Path(__file__).parent / "migrations"
# Held while migrating so two services starting at once do not both migrate (PostgreSQL).
_MIGRATION_LOCK = 0x74726561  # "trea"
BUSY_S = 5.0  # how long a connection waits for another one's lock (SQLite)


__all__ = ["Database", "DatabaseError", "default_url", "describe", "open_database", "parse_url"]
log = structlog.get_logger("treadctl.clinic")


class DatabaseError(Exception):
    """The clinic database cannot be used; the message says which and why."""


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"database: {url!r} is not a database URL "
            "(sqlite:///path/clinic.db or postgresql://user@host/db)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseError("database: an SQLite URL needs a file: sqlite:///path/clinic.db")
        return parsed.set(drivername="sqlite")
    raise DatabaseError(f"database: {backend} is not supported (SQLite or PostgreSQL)")


def describe(url: URL) -> str:
    """The URL without its password, for logs and messages."""
    return url.render_as_string(hide_password=True)


def _private_file(path: Path) -> None:
    """Create the SQLite file (and its directory) readable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")  # the cascades when a person is deleted
    deadline = time.monotonic() + BUSY_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")  # the CLI reads while the service writes
            break
        except sqlite3.OperationalError as exc:
            # while another connection switches a new file to WAL, SQLite answers "locked" at
            # once, without waiting as busy_timeout asks (the service and a CLI opening a
            # fresh install together)
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


class Database:
    """An engine and a session factory over one migrated database."""

    def __init__(self, url: str) -> None:
        self.url = parse_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            _private_file(Path(str(self.url.database)).expanduser())
        self.engine: Engine = create_engine(self.url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest revision this treadctl knows."""
        config = _alembic_config()
        known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
        try:
            with self.engine.begin() as conn:
                if self.is_sqlite:
                    # the write lock before reading the revision, and the DDL inside it: without
                    # it, two first opens at once (service and CLI) both created the tables
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
                current = MigrationContext.configure(conn).get_current_revision()
                if current is not None and current not in known:
                    raise DatabaseError(
                        f"{describe(self.url)}: the clinic database was migrated by a newer "
                        f"treadctl (revision {current}); upgrade treadctl"
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                head = head_revision()
                if current != head:
                    log.info("clinic database migrated", database=describe(self.url), to=head)
        except OperationalError as exc:
            raise DatabaseError(f"{describe(self.url)}: cannot open: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise DatabaseError(f"{describe(self.url)}: cannot migrate: {exc}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str) -> Database:
    """A migrated database, ready to use. Raises DatabaseError with a readable message."""
    database = Database(url)
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    return database
