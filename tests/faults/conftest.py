"""The brokers of tests/mqtt (`broker` for the session, `own_broker` for a test that kills its
own), shared with the fault-injection suite."""

from mqtt.conftest import broker, own_broker

__all__ = ["broker", "own_broker"]
