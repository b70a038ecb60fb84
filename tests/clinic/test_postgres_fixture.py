"""The tests' PostgreSQL server (tests/clinic/postgres.py) and its fixtures: a real server that
accepts connections, a database per test that no other test sees, URLs SQLAlchemy takes, and
nothing left running or on disk after it."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from clinic.postgres import NEEDS_POSTGRES, PostgresMissingError, PostgresServer, find_bindir

_NOTES = sa.MetaData()
NOTE = sa.Table(
    "note",
    _NOTES,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text", sa.String(40), nullable=False),
)


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _databases(server: PostgresServer) -> set[str]:
    with psycopg.connect(server.libpq_url("postgres")) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_the_server_accepts_connections_with_the_settings_asked_for(
    postgres_server: PostgresServer,
) -> None:
    with psycopg.connect(postgres_server.libpq_url()) as conn:
        user, database, version = conn.execute(
            "SELECT current_user, current_database(), current_setting('server_version_num')::int"
        ).fetchone() or (None, None, None)
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()
            for name in ("listen_addresses", "fsync", "synchronous_commit", "server_encoding")
        }
    assert (user, database) == ("postgres", "treadctl")
    assert version is not None
    assert version >= 150000
    assert settings == {
        "listen_addresses": ("127.0.0.1",),
        "fsync": ("off",),
        "synchronous_commit": ("off",),
        "server_encoding": ("UTF8",),
    }
    assert postgres_server.proc is not None
    server_uid = Path(f"/proc/{postgres_server.proc.pid}").stat().st_uid
    # PostgreSQL refuses root: as root the server runs as the postgres user, else as us
    assert server_uid == (pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid())


def test_each_database_is_its_own_and_goes_at_the_end(postgres_server: PostgresServer) -> None:
    with postgres_server.database() as first, postgres_server.database() as second:
        assert first != second
        engine = sa.create_engine(first)
        _NOTES.create_all(engine)
        engine.dispose()
        assert _tables(first) == ["note"]
        assert _tables(second) == []
        names = {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]}
        assert names <= _databases(postgres_server)
    assert not names & _databases(postgres_server)


_SEEN: list[str] = []


@pytest.mark.parametrize("turn", [1, 2])
def test_postgres_url_is_a_fresh_database_per_test(
    postgres_url: str, postgres_server: PostgresServer, request: pytest.FixtureRequest, turn: int
) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    # the other turn left a table in its database: not here, and its database is gone
    assert _tables(postgres_url) == []
    assert postgres_url not in _SEEN
    assert not {url.rsplit("/", 1)[1] for url in _SEEN} & _databases(postgres_server)
    engine = sa.create_engine(postgres_url)
    _NOTES.create_all(engine)
    engine.dispose()
    _SEEN.append(postgres_url)
    assert turn in {1, 2}


def test_the_url_works_with_sqlalchemy_and_psycopg_3(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        _NOTES.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(NOTE), [{"text": "pain 2 → 1"}, {"text": "Borg 13"}])
        # a connection left open: the fixture drops the database all the same (WITH FORCE)
        held = engine.connect()
        rows = held.execute(sa.select(NOTE.c.text).order_by(NOTE.c.id)).scalars().all()
        assert rows == ["pain 2 → 1", "Borg 13"]
    finally:
        engine.dispose()


def test_database_url_runs_the_test_on_sqlite_and_on_postgresql(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kind = request.node.callspec.params["database_url"]
    assert (request.node.get_closest_marker("postgres") is not None) == (kind == "postgresql")
    engine = sa.create_engine(database_url)
    try:
        assert engine.dialect.name == kind
        _NOTES.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(NOTE), [{"text": "10 m walk 0.9 m/s"}])
        with engine.connect() as conn:
            assert conn.execute(sa.select(NOTE.c.text)).scalar_one() == "10 m walk 0.9 m/s"
    finally:
        engine.dispose()
    assert (tmp_path / "clinic.db").exists() == (kind == "sqlite")


@pytest.mark.postgres
def test_the_server_is_gone_after_the_block_even_when_it_raised() -> None:
    server = PostgresServer()
    with pytest.raises(RuntimeError, match="the test failed"), server:
        proc, port, workdir = server.proc, server.port, server.workdir
        with socket.create_connection((server.host, port), timeout=2):
            pass
        raise RuntimeError("the test failed")
    assert proc is not None
    assert workdir is not None
    assert proc.returncode is not None  # waited for, not just signalled
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, port), timeout=2).close()
    assert not workdir.exists()
    assert server.proc is None


def test_no_server_binaries_is_an_error_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresMissingError, match="apt install postgresql") as missing:
        find_bindir(tmp_path)
    assert str(missing.value).startswith(NEEDS_POSTGRES)
    # Debian's layout: the newest version wins
    for version in ("13", "15"):
        (tmp_path / version / "bin").mkdir(parents=True)
        for program in ("initdb", "postgres"):
            (tmp_path / version / "bin" / program).touch()
    assert find_bindir(tmp_path) == tmp_path / "15" / "bin"
