"""Schema creation, migrations, refusing what the code does not know; the database's location."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from treadctl.config import load_settings
from treadctl.store import SCHEMA_VERSION, SessionStore, StoreError, database_path, schema
from treadctl.store.schema import open_readonly, open_writer


def set_version(path: Path, version: int) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()


def test_migrates_an_empty_file_and_sets_the_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "sessions.db"  # the directory is created
    with closing(open_writer(path)) as db:
        assert schema.schema_version(db) == SCHEMA_VERSION == len(schema.MIGRATIONS)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == schema.BUSY_TIMEOUT_MS
    assert {"sessions", "phases", "events", "samples"} <= tables
    assert "samples_session_ts" in indexes
    with closing(open_writer(path)) as db:  # opening again migrates nothing
        assert schema.migrate(db, path) == 0


def test_constraints_hold(tmp_path: Path) -> None:
    with closing(open_writer(tmp_path / "s.db")) as db:
        db.execute(
            "INSERT INTO sessions (id, device_id, driver, program, started)"
            " VALUES ('a', 'treadmill', 'sim', 'manual', 1.0)"
        )
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE sessions SET ended_how = 'exploded'")
        with pytest.raises(sqlite3.IntegrityError):  # foreign keys are on
            db.execute(
                "INSERT INTO samples VALUES ('nope', 1, 0, 0, 'forward', 'forward', 0, 0, 0,"
                " NULL, NULL, 'running')"
            )


def test_a_failed_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    open_writer(path).close()
    broken = ("CREATE TABLE extra (x)", "CREATE TABLE sessions (x)")  # the 2nd fails
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        open_writer(path)
    with closing(sqlite3.connect(path)) as db:
        assert schema.schema_version(db) == SCHEMA_VERSION
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall()


async def test_a_newer_schema_is_refused_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_writer(path).close()
    set_version(path, SCHEMA_VERSION + 1)
    for opener in (open_writer, open_readonly):
        with pytest.raises(StoreError, match="newer than this treadctl knows"):
            opener(path)
    store = SessionStore(path)
    with pytest.raises(StoreError, match="upgrade treadctl"):
        await store.start()
    await store.close()
    with closing(sqlite3.connect(path)) as db:  # and left untouched
        assert schema.schema_version(db) == SCHEMA_VERSION + 1


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"these are not the pages you are looking for" * 200)
    for opener in (open_writer, open_readonly):
        with pytest.raises(StoreError, match="not an SQLite database"):
            opener(path)


def test_readonly_refuses_missing_empty_and_older_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no session database here"):
        open_readonly(tmp_path / "missing.db")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="not a treadctl session database"):
        open_readonly(empty)
    assert not (tmp_path / "missing.db").exists()  # reading never creates


def test_database_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert database_path(defaults, {}) == tmp_path / "home/.local/state/treadctl/sessions.db"
    assert database_path(defaults, {"XDG_STATE_HOME": "/xdg"}) == Path("/xdg/treadctl/sessions.db")
    assert database_path(defaults, {"XDG_STATE_HOME": "relative"}) == (
        tmp_path / "home/.local/state/treadctl/sessions.db"
    )
    assert database_path(defaults, {"STATE_DIRECTORY": "/var/lib/treadctl:/var/lib/other"}) == (
        Path("/var/lib/treadctl/sessions.db")
    )
    config = tmp_path / "treadctl.toml"
    config.write_text('[storage]\npath = "~/rehab/sessions.db"\n')
    assert database_path(load_settings(config), {"STATE_DIRECTORY": "/x"}) == (
        tmp_path / "home/rehab/sessions.db"
    )
