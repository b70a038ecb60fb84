"""The clinic's databases: one PostgreSQL server for the whole run (tests/clinic/postgres.py), a
fresh database in it per test, and `database_url` to run a test on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clinic.browser import Chromium, chromium_process
from clinic.postgres import PostgresError, PostgresServer

# The broker fixtures of tests/mqtt (the same brokers, by the same rules), for the clinic's tests.
from mqtt.conftest import broker, mqtt5_broker, own_broker

POSTGRES_FIXTURES = {"postgres_server", "postgres_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # database_url marks its own "postgresql" case (pytest.param below)
    for item in items:
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Started once (1-1.5 s): tests take their own database from it, `postgres_url`."""
    server: PostgresServer | None = None
    try:
        server = PostgresServer().start()
    except PostgresError as e:
        error = str(e)
    if server is None:
        # As with mosquitto (docs/testing.md): a machine without PostgreSQL's server skips these
        # tests, saying why; CI installs it and fails on any skipped test (.ci/run).
        pytest.skip(error)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this test alone, dropped after it."""
    with postgres_server.database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test runs twice: on a SQLite file of its own, and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/clinic.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


__all__ = ["broker", "mqtt5_broker", "own_broker"]


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """Debian's Chromium, once for the whole run (each test opens its own browser context)."""
    with chromium_process(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser
