"""Every command over a real broker: success and error paths, checked on the treadmill's wire."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from control.rig import with_rules
from mqtt.brokers import Broker
from mqtt.harness import Bridged, bridged, protocol
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op

PROGRAM = "alghadir2019-knee-oa"


def moving_commands(b: Bridged, since: float) -> list[float]:
    return [w.kmh for w in b.rig.wire_speeds() if w.at >= since and w.kmh != 0]


async def test_set_moves_the_belt_and_stop_ramps_it_down(broker: Broker) -> None:
    async with bridged(broker) as b:
        response = await b.user.request("set", {"speed_kmh": 1.2, "walk": "backward"})
        assert response["ok"] is True
        assert response["error"] is None
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.0, 10, "belt at speed")
        # backward walking on a reverse-capable belt: the belt runs in reverse (negative)
        state = await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "running")
        assert state["target"]["walk"] == "backward"
        # walk omitted while a manual session runs: keep walking backward
        assert (await b.user.request("set", {"speed_kmh": 0.8}))["ok"]
        await b.rig.until(lambda: -1.0 < b.rig.sim.belt.speed_kmh < -0.5, 10, "slower")
        assert (await b.user.request("stop"))["ok"]
        await b.rig.mode(Mode.IDLE, 10)
        # the read-back has 0.1 mph steps: the last few cm/s coast out after `idle`
        await b.rig.until(lambda: b.rig.sim.belt.still, 2, "belt still")


async def test_program_start_pause_resume_skip_stop(broker: Broker) -> None:
    async with bridged(broker) as b:
        started = await b.user.request("start", {"program": PROGRAM})
        assert started["ok"], started
        event = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "session_started")
        assert event["program"] == PROGRAM
        state = await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "running")
        assert state["program"] == PROGRAM
        refused = await b.user.request("start", {"program": PROGRAM})
        assert refused["error"]["code"] == "not_allowed_in_mode"
        # the first step is the start countdown, an inserted safety step: skip is refused there
        skip = await b.user.request("skip")
        assert skip["ok"] is False
        assert skip["error"]["code"] == "not_allowed_in_mode"
        assert (await b.user.request("pause"))["ok"]
        await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "paused")
        assert (await b.user.request("resume"))["ok"]
        await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "running")
        assert (await b.user.request("stop"))["ok"]
        await b.rig.mode(Mode.IDLE, 15)
        finished = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "session_finished")
        assert finished["ended"] == "stopped"


async def test_start_uses_the_selected_program(broker: Broker) -> None:
    async with bridged(broker) as b:
        nothing = await b.user.request("start")
        assert nothing["error"]["code"] == "invalid_field"
        assert (await b.user.request("select", {"program": PROGRAM}))["ok"]
        await b.user.wait_for(b.topics.state, lambda s: s["selected_program"] == PROGRAM)
        assert (await b.user.request("start", {}))["ok"]
        await b.user.wait_for(b.topics.state, lambda s: s["program"] == PROGRAM)
        assert (await b.user.request("stop"))["ok"]
        await b.rig.mode(Mode.IDLE, 15)


async def test_estop_any_payload_latches_and_reset_needs_a_still_belt(broker: Broker) -> None:
    async with bridged(broker) as b:
        assert (await b.user.request("set", {"speed_kmh": 2.0, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.5, 10, "at speed")
        t0 = time.monotonic()
        await b.user.send_raw("estop", b"\xff not json at all")
        await b.rig.mode(Mode.ESTOP, 2)
        await b.rig.until(lambda: Op.STOP in b.rig.ops_since(t0), 2, "the stop byte on the wire")
        estop = await b.user.wait_for(b.topics.response("estop"))
        assert estop["ok"] is True
        assert estop["id"] is None  # nothing to echo from an unparsable payload
        event = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "estop")
        assert event["cause"] == "command"
        refused = await b.user.request("start", {"program": PROGRAM})
        assert refused["error"]["code"] == "estop_latched"
        refused_set = await b.user.request("set", {"speed_kmh": 1.0})
        assert refused_set["error"]["code"] == "estop_latched"
        await b.rig.until(lambda: b.rig.sim.belt.still, 10, "belt still")
        reset = await b.user.request("reset")  # judged on a fresh reading of the belt
        assert reset["ok"], reset
        await b.rig.mode(Mode.IDLE, 2)
        # whatever else the payload holds, an id in it is echoed
        answer = await b.user.request("estop", {"note": "fields are not checked on estop"})
        assert answer["ok"] is True


async def test_reset_while_the_belt_moves_is_refused(broker: Broker) -> None:
    async with bridged(broker, with_rules(max_accel_mps2=0.15)) as b:
        assert (await b.user.request("set", {"speed_kmh": 2.5, "walk": "forward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh > 2.0, 15, "at speed")
        b.rig.sim.belt.stop_decel_mps2 = 0.05  # a heavy belt coasting down slowly
        await b.user.send_raw("estop", b"")
        await b.rig.mode(Mode.ESTOP, 2)
        response = await b.user.request("reset")
        assert response["ok"] is False
        assert response["error"]["code"] == "belt_moving"


async def test_errors_have_stable_codes_and_change_nothing(broker: Broker) -> None:
    async with bridged(broker) as b:
        t0 = time.monotonic()
        cases: list[tuple[str, bytes, str]] = [
            ("set", b"{not json", "invalid_json"),
            ("set", b"[1, 2]", "invalid_json"),
            ("set", b'{"speed_kmh": NaN}', "invalid_json"),
            ("set", b'{"speed": 1.0}', "invalid_field"),
            ("set", b'{"speed_kmh": "fast"}', "invalid_field"),
            ("set", b'{"speed_kmh": 1.0, "walk": "sideways"}', "invalid_field"),
            ("set", b'{"speed_kmh": 99}', "out_of_range"),
            ("set", b'{"speed_kmh": -1}', "out_of_range"),
            ("set", b'{"speed_kmh": 5.0, "walk": "backward"}', "out_of_range"),  # cap 3.0
            ("set", b'{"speed_kmh": 1.0, "incline_pct": 40}', "out_of_range"),
            ("start", b'{"program": "no-such-program"}', "unknown_program"),
            ("start", b'{"program": 7}', "invalid_field"),
            ("select", b'{"program": "no-such-program"}', "unknown_program"),
            ("pause", b"{}", "not_allowed_in_mode"),
            ("resume", b"{}", "not_allowed_in_mode"),
            ("skip", b"", "empty_payload"),  # clearing a retained message delivers this
            ("start", b" \n", "empty_payload"),
            ("stop", b'{"extra": 1}', "invalid_field"),
            ("frobnicate", b"{}", "unknown_command"),
        ]
        for name, payload, code in cases:
            before = len(b.user.on(b.topics.response(name)))
            await b.user.send_raw(name, payload)
            response = await b.user.wait_for(
                b.topics.response(name),
                lambda _, n=before, name=name: len(b.user.on(b.topics.response(name))) > n,
            )
            response = b.user.on(b.topics.response(name))[-1]
            assert response["ok"] is False, (name, payload, response)
            assert response["error"]["code"] == code, (name, payload, response)
            assert response["error"]["message"], "a message a person can read"
        # Commands are taken in order: once a later one is answered, every refusal above was
        # dealt with; and two more ticks would have put anything they set moving on the wire.
        assert (await b.user.request("heartbeat"))["ok"]
        await b.rig.ticks(2)
        assert moving_commands(b, t0) == []
        assert b.rig.controller.mode is Mode.IDLE
        assert b.rig.sim.belt.still


async def test_ids_are_echoed_in_errors_too(broker: Broker) -> None:
    async with bridged(broker) as b:
        await b.user.send_raw("set", b'{"id": "req-42", "speed_kmh": 100}')
        response = await b.user.wait_for(b.topics.response("set"))
        assert response["id"] == "req-42"
        assert response["error"]["code"] == "out_of_range"


async def test_interlock_after_an_estop(broker: Broker) -> None:
    async with bridged(broker, with_rules(estop_interlock_s=3.0)) as b:
        await b.user.send_raw("estop", b"{}")
        await b.rig.mode(Mode.ESTOP, 2)
        assert (await b.user.request("reset"))["ok"]
        refused = await b.user.request("start", {"program": PROGRAM})
        assert refused["error"]["code"] == "interlock_active"


async def test_heart_rate_input_feeds_the_safety_rules(broker: Broker) -> None:
    async with bridged(broker, with_rules(heart_rate_max_bpm=140)) as b:
        await b.user.client.publish(b.topics.heart_rate, b'{"bpm": 100}')
        await b.rig.until(lambda: b.rig.controller.supervisor.heart_rate_bpm == 100, 2)
        await b.user.client.publish(b.topics.heart_rate, b"110")  # a bare number
        await b.rig.until(lambda: b.rig.controller.supervisor.heart_rate_bpm == 110, 2)
        for junk in (b"hello", b'{"bpm": "x"}', b"9999", b"[]"):  # ignored, logged
            await b.user.client.publish(b.topics.heart_rate, junk)
        assert (await b.user.request("set", {"speed_kmh": 1.0, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -0.5, 10)
        assert b.rig.controller.supervisor.heart_rate_bpm == 110
        t0 = time.monotonic()
        await b.user.client.publish(b.topics.heart_rate, b'{"bpm": 150}')
        await b.rig.mode(Mode.ESTOP, 2)
        await b.rig.until(lambda: Op.STOP in b.rig.ops_since(t0), 2, "the stop byte on the wire")
        event = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "estop")
        assert event["cause"] == "heart_rate"


async def test_heart_rate_from_a_configured_topic_and_field(broker: Broker) -> None:
    mqtt = {"heart_rate_topic": "strap/garmin/data", "heart_rate_field": "hr"}
    async with bridged(broker, mqtt=mqtt) as b:
        await b.user.client.publish("strap/garmin/data", json.dumps({"hr": 77, "rr": [0.8]}))
        await b.rig.until(lambda: b.rig.controller.supervisor.heart_rate_bpm == 77, 2)


async def test_heartbeat_keeps_the_deadman_satisfied(broker: Broker) -> None:
    async with bridged(broker, with_rules(deadman_s=1.0)) as b:
        assert (await b.user.request("set", {"speed_kmh": 1.0}))["ok"]
        for _ in range(4):
            await asyncio.sleep(0.4)
            assert (await b.user.request("heartbeat"))["ok"]
        assert b.rig.controller.mode is Mode.RUNNING
        await b.rig.mode(Mode.ESTOP, 3)  # heartbeats stopped
        event = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "estop")
        assert event["cause"] == "deadman"


async def test_mqtt5_response_topic_and_correlation_data(mqtt5_broker: Broker) -> None:
    async with bridged(mqtt5_broker) as b:
        reply_to = f"{b.topics.base}/replies/me"
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = reply_to
        props.CorrelationData = b"corr-1"
        await b.user.client.publish(
            b.topics.cmd("set"), b'{"id": 9, "speed_kmh": 0.7}', qos=1, properties=props
        )
        reply = await b.user.wait_for(reply_to)
        assert reply["ok"] is True
        assert reply["id"] == 9
        message = next(m for m in b.user.messages if m.topic.value == reply_to)
        assert message.properties is not None
        assert getattr(message.properties, "CorrelationData", None) == b"corr-1"
        # and the standard response topic still carries it for dashboards
        assert (await b.user.wait_for(b.topics.response("set")))["id"] == 9


async def test_a_full_command_queue_answers_busy(broker: Broker) -> None:
    async with bridged(broker) as b:
        # 200 heartbeats at once: the controller queue holds 64; the rest get `busy` at once
        payloads = [json.dumps({"id": i}).encode() for i in range(200)]
        for payload in payloads:
            await b.user.client.publish(b.topics.cmd("heartbeat"), payload, qos=0)
        await b.rig.until(lambda: len(b.user.on(b.topics.response("heartbeat"))) == 200, 10)
        answers = b.user.on(b.topics.response("heartbeat"))
        assert sorted(a["id"] for a in answers) == list(range(200))
        codes = {a["error"]["code"] for a in answers if not a["ok"]}
        assert codes <= {"busy"}


async def test_retained_commands_are_not_replayed_on_connect(broker: Broker) -> None:
    device = f"r{secrets.token_hex(4)}"
    base = f"treadctl/{device}"
    async with aiomqtt.Client(broker.host, broker.port, protocol=protocol(broker)) as other:
        await other.publish(f"{base}/cmd/set", b'{"speed_kmh": 1.0}', qos=1, retain=True)
        try:
            async with bridged(broker, device={"id": device}) as b:
                # The retained set came at subscribe time, before anything published after the
                # bridge went online; commands are taken in order, so once this one is answered
                # the retained one was dealt with, and two ticks would have put it on the wire.
                assert (await b.user.request("heartbeat"))["ok"]
                await b.rig.ticks(2)
                assert b.rig.controller.mode is Mode.IDLE
                assert moving_commands(b, 0.0) == []
                assert b.user.on(b.topics.response("set")) == []  # not even answered
        finally:
            await other.publish(f"{base}/cmd/set", b"", qos=1, retain=True)  # clear it


async def test_set_keeps_walk_and_incline_when_omitted(broker: Broker) -> None:
    async with bridged(broker) as b:
        body = {"speed_kmh": 1.0, "walk": "backward", "incline_pct": 2.0}
        assert (await b.user.request("set", body))["ok"]
        await b.user.wait_for(b.topics.state, lambda s: s["target"]["incline_pct"] == 2.0)
        assert (await b.user.request("set", {"speed_kmh": 1.5}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.2, 10, "faster, still reverse")
        state = await b.user.wait_for(b.topics.state, lambda s: s["target"]["speed_kmh"] > 1.2)
        assert state["target"]["walk"] == "backward"
        assert state["target"]["incline_pct"] == 2.0
