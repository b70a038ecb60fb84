"""A broker for the whole session, and a fresh one for tests that kill theirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mqtt.brokers import Broker, any_broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = any_broker(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.kill()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = any_broker(tmp_path_factory.mktemp("own-broker")).start()
    yield b
    b.kill()
