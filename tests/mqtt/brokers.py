"""The tests' brokers, on treadctl/sim/brokers.py's launcher: mosquitto when installed (CI
installs it), otherwise the embedded amqtt broker, each in its own process on a free loopback port.

`TREADCTL_TEST_BROKER=embedded` makes `any_broker` the embedded broker even where mosquitto is
installed: CI runs the broker tests a second time so, as a machine without mosquitto would
(docs/testing.md). Tests that need mosquitto itself (MQTT 5, passwords, TLS, ACLs) ask for it with
`mosquitto_broker` and skip only where it is not installed.

Sync fixtures, which run outside the event loop, use `start()` and `kill()`; a test whose loop runs
a controller or a simulator uses `astart()` and `akill()` (tests/loopwatch.py fails a test whose
loop is blocked).
"""

from __future__ import annotations

import os
from pathlib import Path

from treadctl.sim.brokers import (
    NEEDS_MOSQUITTO,
    Broker,
    TlsFiles,
    embedded_broker,
    find_mosquitto,
    mosquitto_broker,
)

__all__ = [
    "MOSQUITTO",
    "NEEDS_CLIENTS",
    "NEEDS_MOSQUITTO",
    "Broker",
    "TlsFiles",
    "any_broker",
    "mosquitto_broker",
]

MOSQUITTO = find_mosquitto()
NEEDS_CLIENTS = "needs mosquitto-clients (apt install mosquitto-clients; CI installs it)"


def any_broker(workdir: Path) -> Broker:
    """mosquitto if installed (unless TREADCTL_TEST_BROKER=embedded), else the embedded broker;
    not yet started."""
    if MOSQUITTO is not None and os.environ.get("TREADCTL_TEST_BROKER") != "embedded":
        return mosquitto_broker(workdir)
    return embedded_broker(workdir)
