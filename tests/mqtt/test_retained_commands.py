"""Clearing a retained command never starts the belt (issue 15, defect 5).

`mosquitto_pub -r -n -t …/cmd/start`, the standard way to delete a retained message, reaches
subscribers live as an empty message; it used to be read as `{}` and, with a program selected,
started it. An empty payload is not a command (`empty_payload`), except on `cmd/estop`; and with
MQTT 5 the bridge subscribes with "retain as published", so a retained command published while it
is connected is recognised and ignored like one replayed at subscribe time. The treadmill's wire
says whether anything moved.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from typing import Any

import pytest

from mqtt.brokers import NEEDS_CLIENTS, Broker
from mqtt.harness import Bridged, bridged
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op

STARTS = {Op.START_WATCHDOG, Op.START, Op.SET_WEIGHT_OR_START}  # A0, A1, A9 (woodway's start)
PROGRAM = "backward-intervals"


def _belt_untouched(b: Bridged, since: float) -> None:
    """No start and no speed other than 0 on the treadmill's wire, and the belt still."""
    assert STARTS.isdisjoint(b.rig.ops_since(since)), [hex(op) for op in b.rig.ops_since(since)]
    assert [w.kmh for w in b.rig.wire_speeds() if w.at >= since and w.kmh != 0] == []
    assert b.rig.controller.mode is Mode.IDLE
    assert b.rig.sim.belt.still


async def _select(b: Bridged) -> None:
    """A program selected: from here a `{}` start would run it."""
    assert (await b.user.request("select", {"program": PROGRAM}))["ok"]


async def _then_handled(b: Bridged, payload: bytes) -> None:
    """The broker delivered `payload` on cmd/start live (the user, subscribed to the base topic,
    got it too), and the bridge has dealt with it: commands are taken in order, so once a later
    one is answered the earlier one was acted on, or not. `stop` when idle changes nothing."""
    await b.user.wait_for(b.topics.cmd("start"), lambda p: p == _decoded(payload))
    assert (await b.user.request("stop"))["ok"]


def _decoded(payload: bytes) -> Any:
    """How the harness's user shows a payload: parsed JSON, or the text."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode()


async def _clear(b: Bridged, name: str) -> None:
    await b.user.client.publish(b.topics.cmd(name), b"", qos=1, retain=True)


async def _started_by_plain_start(b: Bridged) -> None:
    """The control: the same start without retain does start the selected program."""
    t0 = time.monotonic()
    answer = await b.user.request("start")
    assert answer["ok"], answer
    await b.rig.until(lambda: not STARTS.isdisjoint(b.rig.ops_since(t0)), 5, "a start on the wire")
    assert (await b.user.request("estop"))["ok"]
    await b.rig.until(lambda: b.rig.sim.belt.still, 10, "still")


async def test_a_retained_empty_start_with_mqtt5_is_ignored_and_moves_nothing(
    mqtt5_broker: Broker,
) -> None:
    async with bridged(mqtt5_broker) as b:
        await _select(b)
        t0 = time.monotonic()
        await _clear(b, "start")
        await _then_handled(b, b"")
        _belt_untouched(b, t0)
        assert b.user.on(b.topics.response("start")) == []  # a retained message is not answered
        await _started_by_plain_start(b)


async def test_a_live_retained_start_with_mqtt5_is_ignored_and_moves_nothing(
    mqtt5_broker: Broker,
) -> None:
    async with bridged(mqtt5_broker) as b:
        await _select(b)
        t0 = time.monotonic()
        try:
            body = b'{"id": "retained-1", "program": "backward-intervals"}'
            await b.user.client.publish(b.topics.cmd("start"), body, qos=1, retain=True)
            await _then_handled(b, body)
            _belt_untouched(b, t0)
            assert b.user.on(b.topics.response("start")) == []
        finally:
            await _clear(b, "start")
        await _then_handled(b, b"")
        _belt_untouched(b, t0)


@pytest.mark.parametrize("payload", [b"", b" \n"])
async def test_an_empty_start_with_mqtt311_is_refused_as_empty_payload(
    broker: Broker, payload: bytes
) -> None:
    """MQTT 3.1.1 has no retain-as-published: the broker clears the retain flag on live
    delivery, and the empty-payload rule alone keeps the belt still."""
    async with bridged(broker, mqtt={"protocol": "3.1.1"}) as b:
        await _select(b)
        t0 = time.monotonic()
        await b.user.client.publish(b.topics.cmd("start"), payload, qos=1, retain=True)
        answer: dict[str, Any] = await b.user.wait_for(b.topics.response("start"))
        assert answer["ok"] is False
        assert answer["error"]["code"] == "empty_payload", answer
        assert answer["id"] is None
        await _then_handled(b, payload)
        _belt_untouched(b, t0)
        await _started_by_plain_start(b)


async def test_a_retained_empty_estop_still_stops_the_belt(broker: Broker) -> None:
    """The exception: on `cmd/estop` any payload stops the belt, retained or not, empty or not."""
    async with bridged(broker) as b:
        assert (await b.user.request("set", {"speed_kmh": 0.8, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -0.3, 10, "belt moving")
        t0 = time.monotonic()
        await _clear(b, "estop")
        await b.rig.until(lambda: Op.STOP in b.rig.ops_since(t0), 2, "the stop byte on the wire")
        await b.rig.mode(Mode.ESTOP, 2)


MOSQUITTO_PUB = shutil.which("mosquitto_pub")


@pytest.fixture
def protocol_broker(request: pytest.FixtureRequest, broker: Broker, protocol: str) -> Broker:
    """mosquitto for MQTT 5 whatever broker the other tests use (retain-as-published needs it),
    the session's broker for 3.1.1. A sync fixture: starting mosquitto blocks, and here it does
    not block the test's event loop."""
    if protocol == "5":
        mqtt5: Broker = request.getfixturevalue("mqtt5_broker")
        return mqtt5
    return broker


@pytest.mark.mosquitto_clients
@pytest.mark.skipif(MOSQUITTO_PUB is None, reason=NEEDS_CLIENTS)
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_mosquitto_pub_clearing_a_retained_start_moves_nothing(
    protocol_broker: Broker, protocol: str
) -> None:
    """`mosquitto_pub -r -n`, as a person clears a retained command: ignored with MQTT 5,
    refused as `empty_payload` with 3.1.1; the selected program never starts."""
    broker = protocol_broker
    assert MOSQUITTO_PUB is not None
    async with bridged(broker, mqtt={"protocol": protocol}) as b:
        await _select(b)
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            MOSQUITTO_PUB, "-h", broker.host, "-p", str(broker.port), "-q", "1",
            "-r", "-n", "-t", b.topics.cmd("start"),
        )  # fmt: skip
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await _then_handled(b, b"")
        _belt_untouched(b, t0)
        answers = b.user.on(b.topics.response("start"))
        if protocol == "5":
            assert answers == []
        else:
            assert [a["error"]["code"] for a in answers] == ["empty_payload"], answers
