"""Opening and migrating the clinic database (clinic/database.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from clinic.postgres import PostgresServer
from treadctl.clinic.database import Database, DatabaseError, head_revision, open_database
from treadctl.clinic.tables import Base
from treadctl.sim.brokers import free_port

TABLES = {
    "people",
    "prescriptions",
    "progression_steps",
    "sessions",
    "annotations",
    "measures",
    "accounts",
    "logins",
    "commands",
}


def _revision(database: Database) -> str | None:
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_a_new_database_is_migrated_to_the_newest_revision(database_url: str) -> None:
    database = open_database(database_url)
    try:
        assert _revision(database) == head_revision()
        assert head_revision() is not None
        tables = set(sa.inspect(database.engine).get_table_names())
        assert tables == TABLES | {"alembic_version"}
    finally:
        database.close()


def test_opening_a_migrated_database_again_changes_nothing(database_url: str) -> None:
    first = open_database(database_url)
    try:
        with first.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO people (id, notes, limits, parameters, created) "
                    "VALUES ('mrs-k', '', '{}', '{}', :t)"
                ),
                {"t": "2026-12-01 08:00:00+00:00"},
            )
    finally:
        first.close()
    second = open_database(database_url)
    try:
        assert _revision(second) == head_revision()
        with second.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM people")).scalars().all() == ["mrs-k"]
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
    finally:
        second.close()


def _open_and_close(url: str) -> str:
    try:
        open_database(url).close()
    except DatabaseError as exc:
        return str(exc)
    return "ok"


def _first_opens_at_once(urls: list[str]) -> None:
    """Three processes open each new database at once (the service and a CLI command on a
    fresh install): each opens it, and it is migrated once."""
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        for url in urls:
            assert pool.map(_open_and_close, [url] * 3) == ["ok"] * 3
            database = open_database(url)
            try:
                assert _revision(database) == head_revision()
            finally:
                database.close()


def test_first_opens_at_once_on_sqlite(tmp_path: Path) -> None:
    _first_opens_at_once([f"sqlite:///{tmp_path}/{i}/clinic.db" for i in range(12)])


def test_first_opens_at_once_on_postgresql(postgres_server: PostgresServer) -> None:
    with postgres_server.database() as one, postgres_server.database() as two:
        _first_opens_at_once([one, two])


def test_the_migrations_build_exactly_the_tables_the_code_declares(database_url: str) -> None:
    database = open_database(database_url)
    try:
        with database.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        database.close()


def test_the_sqlite_file_and_its_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "treadctl" / "clinic.db"
    open_database(f"sqlite:///{path}").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_database_of_a_newer_treadctl_is_refused_and_left_as_it_is(database_url: str) -> None:
    database = open_database(database_url)
    try:
        with database.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        database.close()
    with pytest.raises(DatabaseError, match=r"newer treadctl \(revision 9999\); upgrade treadctl"):
        open_database(database_url)
    engine = sa.create_engine(Database(database_url).url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                ("9999",)
            ]
            assert set(sa.inspect(conn).get_table_names()) == TABLES | {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", r"'not a url' is not a database URL \(sqlite:///path/clinic.db or"),
        ("mysql://clinic@localhost/clinic", r"database: mysql is not supported"),
        ("sqlite://", r"an SQLite URL needs a file"),
        ("sqlite:///:memory:", r"an SQLite URL needs a file"),
    ],
)
def test_a_url_that_cannot_be_used_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        open_database(url)


def test_an_unreachable_postgresql_server_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://clinic:secret@127.0.0.1:{port}/clinic"
    with pytest.raises(DatabaseError) as caught:
        open_database(url)
    message = str(caught.value)
    assert message.startswith(
        f"postgresql+psycopg://clinic:***@127.0.0.1:{port}/clinic: cannot open"
    )
    assert "Connection refused" in message
    assert "secret" not in message


def test_a_postgresql_url_uses_psycopg_3(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert plain.startswith("postgresql://")
    database = open_database(plain)
    try:
        assert database.engine.dialect.driver == "psycopg"
        with database.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        database.close()


_PERSON = (
    "INSERT INTO people (id, notes, limits, parameters, created) "
    "VALUES ('mrs-k', '', '{}', '{}', '2026-11-30 08:00:00+00:00')"
)
_PRESCRIPTION = (
    "INSERT INTO prescriptions (id, person_id, program, parameters, sessions_per_week, weeks, "
    "start_date, created) VALUES (1, 'mrs-k', 'p', '{}', 3, 4, '2026-11-30', "
    "'2026-11-30 08:00:00+00:00')"
)
_STEP = (
    "INSERT INTO progression_steps (prescription_id, week_start, decision, parameter, old_value, "
    "new_value, reason, status, created) VALUES (1, '2026-11-30', 'hold', 'x', 1, 1, 'r', "
    "'pending', '2026-12-07 08:00:00+00:00')"
)


def test_an_older_database_is_upgraded_keeping_its_rows(database_url: str) -> None:
    """A database at the first revision (as an earlier treadctl left it) reaches the newest one
    with its rows, and then holds one progression step per prescription and week."""
    from alembic import command  # noqa: PLC0415 - only this test drives Alembic itself

    from treadctl.clinic.database import _alembic_config  # noqa: PLC0415

    old = Database(database_url)
    try:
        config = _alembic_config()
        with old.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        with old.engine.begin() as conn:
            for statement in (_PERSON, _PRESCRIPTION, _STEP):
                conn.execute(sa.text(statement))
    finally:
        old.close()
    database = open_database(database_url)
    try:
        assert _revision(database) == head_revision() != "0001"
        with database.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM progression_steps")).scalar() == 1
        with pytest.raises(sa.exc.IntegrityError), database.engine.begin() as conn:
            conn.execute(sa.text(_STEP))  # the same week again
    finally:
        database.close()
