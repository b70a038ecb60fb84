"""A broker for the whole session, a fresh one for tests that kill theirs, and mosquitto itself
for tests of what only it has (MQTT 5). See tests/mqtt/brokers.py and docs/testing.md."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mqtt.brokers import MOSQUITTO, NEEDS_MOSQUITTO, Broker, any_broker, mosquitto_broker


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


@pytest.fixture(scope="session")
def mqtt5_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """mosquitto whatever TREADCTL_TEST_BROKER says: the embedded broker speaks MQTT 3.1.1 only."""
    if MOSQUITTO is None:
        pytest.skip(f"{NEEDS_MOSQUITTO}: MQTT 5, which the embedded broker does not speak")
    b = mosquitto_broker(tmp_path_factory.mktemp("mqtt5-broker")).start()
    yield b
    b.kill()
