"""hypothesis-generated payloads on every command topic, through a real broker.

Payloads are drawn by hypothesis up front (many examples, no shrinking across the network) and
sent to one running bridge: each must be answered, nothing may crash, and an invalid command
must never put a moving speed on the treadmill's wire.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqtt.brokers import Broker
from mqtt.harness import Bridged, bridged
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.mqtt.topics import COMMANDS

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ("id", "program", "parameters", "speed_kmh", "walk", "incline_pct")


def _plausible_objects() -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the real field names and random values: the interesting near-misses."""
    values = JSON | st.sampled_from(["forward", "backward", "alghadir2019-knee-oa", 1.0, -1, 1e9])
    return st.dictionaries(st.sampled_from(FIELDS), values, max_size=4)


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


PAYLOADS = (
    st.binary(max_size=64)
    | JSON.map(_encode)
    | _plausible_objects().map(_encode)
    | st.text(max_size=40).map(str.encode)
)
# cmd/estop stops the belt whatever its payload: fuzzed on its own below.
QUEUED = [n for n in COMMANDS if n != "estop"]
NAMES = st.sampled_from([*QUEUED, "bogus", "START", ""])


def draw_cases(count: int) -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(NAMES, PAYLOADS)
    def collect(name: str, payload: bytes) -> None:
        cases.append((name, payload))

    collect()
    return cases


CASES = 500


@pytest.fixture
def cases() -> list[tuple[str, bytes]]:
    """Drawn by a sync fixture, before the test's event loop runs: hypothesis takes about a
    second of CPU, which in the loop would hold up the controller and the simulated treadmill."""
    return draw_cases(CASES)


async def _request_past_interlock(b: Bridged, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request's answer once it is not refused for the interlock after a reset (a bounded
    wait for the interlock to pass, asked of the daemon itself)."""
    async with asyncio.timeout(10):
        while True:
            answer = await b.user.request(name, body)
            if answer["ok"] or answer["error"]["code"] != "interlock_active":
                return answer
            await asyncio.sleep(0.05)


async def _back_to_rest(b: Bridged) -> None:
    """After a payload that happened to be valid: e-stop whatever it set moving, and reset once
    the treadmill and the controller both read the belt still. The interlock after the reset is
    not waited out: a start refused with `interlock_active` is one more refused case."""
    controller = b.rig.controller
    if controller.mode in (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING):
        assert (await b.user.request("estop"))["ok"]
    if controller.mode is Mode.ESTOP:
        await b.rig.until(
            lambda: b.rig.sim.belt.still and b.rig.snapshots[-1].actual.speed_kmh == 0,
            10,
            "the belt still, as the controller reads it",
        )
        answer = await b.user.request("reset")
        assert answer["ok"], answer
    assert controller.mode is Mode.IDLE, controller.mode


@pytest.mark.timeout(240)  # ~45 s for 500 cases; slack for a loaded CI machine
async def test_every_command_topic_answers_any_payload_and_invalid_ones_never_move_the_belt(
    broker: Broker, cases: list[tuple[str, bytes]]
) -> None:
    assert len(cases) >= CASES
    assert {name for name, _ in cases} >= set(QUEUED), "every command topic gets payloads"
    valid = 0
    async with bridged(broker) as b:  # FAST rules: a 0.2 s interlock, quick ramps
        for name, payload in cases:
            topic = b.topics.response(name)
            before = len(b.user.on(topic))
            t0 = time.monotonic()
            await b.user.send_raw(name, payload)

            def answered_now(t: str = topic, n: int = before) -> bool:
                return len(b.user.on(t)) > n

            await b.rig.until(answered_now, 5, f"answer {name}")
            response = b.user.on(topic)[-1]
            assert set(response) >= {"id", "ok", "error"}, response
            if response["ok"]:
                valid += 1
                await _back_to_rest(b)
                continue
            assert isinstance(response["error"]["code"], str)
            assert response["error"]["code"]
            assert response["error"]["message"]
            # refused: nothing moved
            moving = [w for w in b.rig.wire_speeds() if w.at >= t0 and w.kmh != 0]
            assert moving == [], (name, payload, response)
        print(f"\n{len(cases)} cases, {valid} valid", file=sys.stderr)
        # and the daemon still works
        assert not b.rig.task.done()
        assert (await _request_past_interlock(b, "set", {"speed_kmh": 0.6})).get("ok") is True
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh > 0.3, 10, "belt moving")


def draw_payloads(count: int) -> list[bytes]:
    payloads: list[bytes] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(PAYLOADS)
    def collect(payload: bytes) -> None:
        payloads.append(payload)

    collect()
    return payloads


@pytest.fixture
def estop_payloads() -> list[bytes]:
    return draw_payloads(6)  # outside the loop, as `cases`


async def test_the_estop_topic_stops_the_moving_belt_whatever_the_payload(
    broker: Broker, estop_payloads: list[bytes]
) -> None:
    payloads = estop_payloads
    assert len(payloads) >= 4
    async with bridged(broker) as b:
        topic = b.topics.response("estop")
        for payload in payloads:
            body = {"speed_kmh": 0.6, "walk": "backward"}
            assert (await _request_past_interlock(b, "set", body))["ok"]
            await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -0.3, 10, "belt moving")
            before = len(b.user.on(topic))
            t0 = time.monotonic()

            def stopped(t: float = t0) -> bool:
                return Op.STOP in b.rig.ops_since(t)

            def answered(n: int = before) -> bool:
                return len(b.user.on(topic)) > n

            await b.user.send_raw("estop", payload)
            await b.rig.until(stopped, 2, f"stop on the wire for {payload!r}")
            await b.rig.mode(Mode.ESTOP, 2)
            await b.rig.until(answered, 5, "answered")
            assert b.user.on(topic)[-1]["ok"] is True, (payload, b.user.on(topic)[-1])
            await b.rig.until(lambda: b.rig.sim.belt.still, 10, "belt still")
            assert (await b.user.request("reset"))["ok"]
