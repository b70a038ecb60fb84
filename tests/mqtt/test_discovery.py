"""Home Assistant device-based discovery: the config's structure, its templates against the real
payloads, and the entities used exactly as Home Assistant uses them, against a real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Coroutine
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mqtt.brokers import Broker
from mqtt.harness import User, bridged, user_client
from mqtt.snapshots import OK_BOX, PRESSED, idle_snapshot, running_snapshot, topics_for
from treadctl.core.state import Mode, Snapshot
from treadctl.mqtt import requests
from treadctl.mqtt.discovery import FAULT_MODES, RUNNING_MODES, discovery_config
from treadctl.mqtt.topics import COMMANDS, Topics

PROGRAMS = ["alghadir2019-knee-oa", "backward-intervals", "chang2021-stroke"]
SENSORS = {"speed", "incline", "distance", "elapsed", "phase", "remaining", "heart_rate", "mode"}
BINARY_SENSORS = {"running", "fault"}
BUTTONS = {"start", "stop", "pause", "resume", "estop", "reset"}
HA_ID = re.compile(r"^[a-zA-Z0-9_-]+$")  # object ids in discovery topics and component keys
# Attribute paths read from value_json (`.get(...)` calls are not fields).
FIELD = re.compile(r"value_json\.(?!get\()([A-Za-z_]\w*(?:\.(?!get\()[A-Za-z_]\w*)*)")
MODE_TEST = re.compile(r"value_json\.mode == '([a-z]+)'")
BRIDGE_STATE_FIELDS = {"selected_program"}  # the bridge adds it to Snapshot.state_dict()


def _config(topics: Topics) -> dict[str, Any]:
    return discovery_config(
        topics, programs=PROGRAMS, max_speed_kmh=6.0, model="woodway", version="1.2.3"
    )


def _by_platform(config: dict[str, Any], platform: str) -> dict[str, dict[str, Any]]:
    return {key: c for key, c in config["cmps"].items() if c["p"] == platform}


def _has_path(data: dict[str, Any], path: str) -> bool:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _fill(template: str, value: str) -> str:
    """What Home Assistant sends for a `cmd_tpl` with this value (the only variable used)."""
    assert template.count("{{ value }}") == 1, template
    return template.replace("{{ value }}", value)


def check_structure(config: dict[str, Any], topics: Topics, programs: list[str]) -> None:
    """What Home Assistant requires of a device-based discovery payload, and the entity set."""
    dev, origin = config["dev"], config["o"]
    assert dev["ids"] == [f"treadctl_{topics.device_id}"]
    assert dev["name"]
    assert origin["name"] == "treadctl"
    assert config["avty_t"] == topics.availability
    cmps: dict[str, dict[str, Any]] = config["cmps"]
    assert all(HA_ID.match(key) for key in cmps), sorted(cmps)
    assert all(c.get("p") for c in cmps.values())
    uids = [c["uniq_id"] for c in cmps.values()]
    assert len(set(uids)) == len(uids) == len(cmps)
    assert all(uid.startswith(f"treadctl_{topics.device_id}_") for uid in uids)

    assert set(_by_platform(config, "sensor")) == SENSORS
    assert set(_by_platform(config, "binary_sensor")) == BINARY_SENSORS
    for component in (
        _by_platform(config, "sensor") | _by_platform(config, "binary_sensor")
    ).values():
        assert component["stat_t"] in (topics.state, topics.telemetry), component
        assert component["val_tpl"], component

    numbers = _by_platform(config, "number")
    selects = _by_platform(config, "select")
    buttons = _by_platform(config, "button")
    assert len(numbers) == 1
    assert len(selects) == 1
    for component in (numbers | selects | buttons).values():
        assert component["cmd_t"], component
    (number,) = numbers.values()
    assert number["cmd_t"] == topics.cmd("set")
    assert number["min"] == 0
    assert number["max"] > number["min"]
    assert number["step"] > 0
    (select,) = selects.values()
    assert select["cmd_t"] == topics.cmd("select")
    assert select["options"] == programs

    pressed = {topics.command_name(b["cmd_t"]) for b in buttons.values()}
    assert pressed == BUTTONS
    for button in buttons.values():
        name = topics.command_name(button["cmd_t"])
        assert name in COMMANDS
        assert button["cmd_t"] == topics.cmd(str(name))
        assert "pl_prs" in button


def test_discovery_config_has_the_structure_home_assistant_requires() -> None:
    topics = topics_for()
    config = _config(topics)
    check_structure(config, topics, PROGRAMS)
    assert config["dev"]["mdl"] == "woodway"
    assert config["dev"]["sw"] == config["o"]["sw"] == "1.2.3"
    assert topics.discovery == "homeassistant/device/treadctl_clinic-1/config"
    object_id = topics.discovery.split("/")[2]
    assert HA_ID.match(object_id)
    # A JSON document as it goes on the wire.
    assert json.loads(json.dumps(config)) == config


def test_the_program_list_and_speed_limit_come_from_the_arguments() -> None:
    topics = topics_for("t2")
    config = discovery_config(
        topics, programs=["only-one"], max_speed_kmh=4.5, model="sim", version="0"
    )
    check_structure(config, topics, ["only-one"])
    (number,) = _by_platform(config, "number").values()
    assert number["max"] == 4.5
    assert config["cmps"]["program"]["options"] == ["only-one"]


def test_value_templates_read_fields_the_payloads_really_have() -> None:
    topics = topics_for()
    snap = running_snapshot()
    payloads = {
        topics.state: snap.state_dict() | dict.fromkeys(BRIDGE_STATE_FIELDS),
        topics.telemetry: snap.telemetry_dict(),
    }
    checked = 0
    for key, component in _config(topics)["cmps"].items():
        template = component.get("val_tpl")
        if template is None:
            continue
        fields = FIELD.findall(template)
        assert fields, f"{key}: {template!r} reads no field of value_json"
        for path in fields:
            payload = payloads[component["stat_t"]]
            assert _has_path(payload, path), f"{key}: value_json.{path} not in {sorted(payload)}"
            checked += 1
    assert checked >= len(SENSORS) + len(BINARY_SENSORS) + 2


def test_binary_sensor_templates_name_real_modes() -> None:
    cmps = _config(topics_for())["cmps"]
    running = set(MODE_TEST.findall(cmps["running"]["val_tpl"]))
    fault = set(MODE_TEST.findall(cmps["fault"]["val_tpl"]))
    assert running == {"running", "paused", "stopping"}
    assert fault == {"estop", "fault"}
    assert running | fault <= {m.value for m in Mode}
    assert set(cmps["mode"]["options"]) == {m.value for m in Mode}


def test_command_templates_and_button_payloads_are_valid_requests() -> None:
    topics = topics_for()
    cmps = _config(topics)["cmps"]
    number_body = _fill(cmps["target_speed"]["cmd_tpl"], "1.5")
    set_request = requests.parse_request("set", number_body.encode())
    assert isinstance(set_request, requests.SetRequest)
    assert set_request.speed_kmh == 1.5
    assert set_request.walk is None  # keeps the walk direction
    select_body = _fill(cmps["program"]["cmd_tpl"], PROGRAMS[0])
    select_request = requests.parse_request("select", select_body.encode())
    assert isinstance(select_request, requests.SelectRequest)
    assert select_request.program == PROGRAMS[0]
    for button in _by_platform(_config(topics), "button").values():
        name = str(topics.command_name(button["cmd_t"]))
        request = requests.parse_request(name, button["pl_prs"].encode())
        assert request.id is None


# --- templates rendered as Home Assistant renders them ------------------------------------------

# Home Assistant renders MQTT templates in an immutable sandbox, with `value` (the payload) and
# `value_json` (the payload parsed as JSON). It renders a missing variable as "" with a warning and
# raises UndefinedError on an attribute of one; StrictUndefined raises on both, so a template that
# passes here neither errors nor warns there.
HA = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
INPUTS = ["box", "mushroom"]


def render(template: str, payload: bytes) -> str:
    text = payload.decode()
    return HA.from_string(template).render(value=text, value_json=json.loads(text))


def state_payload(snap: Snapshot, selected: str | None) -> bytes:
    """The retained state exactly as the bridge publishes it (MqttBridge._publish_state)."""
    return json.dumps(snap.state_dict() | {"selected_program": selected}).encode()


def telemetry_payload(snap: Snapshot) -> bytes:
    return json.dumps(snap.telemetry_dict() | {"ts": 1_700_000_000.5}).encode()


SNAPSHOTS = {
    "running": (running_snapshot(), "backward-intervals"),
    "idle, no input reported yet": (idle_snapshot(), None),
    "estop, one input pressed": (
        dataclasses.replace(idle_snapshot(), mode=Mode.ESTOP, estop_inputs=(OK_BOX, PRESSED)),
        PROGRAMS[0],
    ),
    "fault, inputs healthy": (
        dataclasses.replace(
            running_snapshot(),
            mode=Mode.FAULT,
            fault="link lost",
            estop_inputs=(OK_BOX, dataclasses.replace(PRESSED, status="ok")),
        ),
        None,
    ),
}


def _config_with_inputs(topics: Topics) -> dict[str, Any]:
    return discovery_config(
        topics,
        programs=PROGRAMS,
        max_speed_kmh=6.0,
        model="woodway",
        version="1.2.3",
        estop_inputs=INPUTS,
    )


def _check_rendered(key: str, component: dict[str, Any], out: str) -> None:
    """What Home Assistant accepts from a value template of this platform."""
    match component["p"]:
        case "binary_sensor":
            assert out in ("ON", "OFF"), (key, out)
        case "sensor" if "options" in component:
            assert out in component["options"], (key, out)
        case "sensor" if "unit_of_meas" in component:
            assert out == "None" or float(out) >= 0, (key, out)  # "None" is unknown
        case "number":
            assert component["min"] <= float(out) <= component["max"], (key, out)
        case "select":
            assert out == "None" or out in component["options"], (key, out)


@pytest.mark.parametrize("case", list(SNAPSHOTS))
def test_every_value_template_renders_on_the_real_payloads(case: str) -> None:
    topics = topics_for()
    snap, selected = SNAPSHOTS[case]
    payloads = {
        topics.state: state_payload(snap, selected),
        topics.telemetry: telemetry_payload(snap),
    }
    cmps = _config_with_inputs(topics)["cmps"]
    rendered = {
        key: render(c["val_tpl"], payloads[c["stat_t"]])
        for key, c in cmps.items()
        if "val_tpl" in c
    }
    assert len(rendered) == len(SENSORS) + len(BINARY_SENSORS) + len(INPUTS) + 2
    for key, out in rendered.items():
        _check_rendered(key, cmps[key], out)
    assert rendered["mode"] == snap.mode.value
    assert rendered["running"] == ("ON" if snap.mode.value in RUNNING_MODES else "OFF")
    assert rendered["fault"] == ("ON" if snap.mode.value in FAULT_MODES else "OFF")
    assert rendered["program"] == str(selected)
    healthy = {i.name: i.healthy for i in snap.estop_inputs}
    for name in INPUTS:  # ON means unsafe: an input not reported yet is not known to be safe
        assert rendered[f"estop_input_{name}"] == ("OFF" if healthy.get(name) else "ON")


def test_running_values_render_as_the_entities_show_them() -> None:
    topics = topics_for()
    snap, selected = SNAPSHOTS["running"]
    cmps = _config(topics)["cmps"]
    state, telemetry = state_payload(snap, selected), telemetry_payload(snap)
    assert render(cmps["speed"]["val_tpl"], telemetry) == "1.2"
    assert render(cmps["heart_rate"]["val_tpl"], telemetry) == "96"
    assert render(cmps["phase"]["val_tpl"], state) == "backward bout"
    assert render(cmps["target_speed"]["val_tpl"], state) == "1.2"
    idle = idle_snapshot()
    assert render(cmps["heart_rate"]["val_tpl"], telemetry_payload(idle)) == "None"
    assert render(cmps["phase"]["val_tpl"], state_payload(idle, None)) == "None"


def test_an_empty_estop_inputs_renders_unsafe_and_does_not_raise() -> None:
    # The state carries {} until each input first reports (and on a daemon without inputs).
    topics = topics_for()
    cmps = _config_with_inputs(topics)["cmps"]
    empty = state_payload(idle_snapshot(), None)
    assert json.loads(empty)["estop_inputs"] == {}
    for name in INPUTS:
        assert render(cmps[f"estop_input_{name}"]["val_tpl"], empty) == "ON"
    # Even a state from before the field existed.
    legacy = json.dumps({"mode": "idle"}).encode()
    assert render(cmps["estop_input_box"]["val_tpl"], legacy) == "ON"


def test_estop_input_names_are_refused_when_they_could_break_the_template() -> None:
    with pytest.raises(ValueError, match="a-z"):
        discovery_config(
            topics_for(), programs=[], max_speed_kmh=6, model="m", version="0", estop_inputs=["x')"]
        )


@pytest.mark.parametrize("speed", ["0", "0.1", "2.5", "6.0"])
def test_the_number_command_template_renders_a_valid_set(speed: str) -> None:
    cmps = _config(topics_for())["cmps"]
    # Home Assistant passes the number as a float.
    body = HA.from_string(cmps["target_speed"]["cmd_tpl"]).render(value=float(speed))
    request = requests.parse_request("set", body.encode())
    assert isinstance(request, requests.SetRequest)
    assert request.speed_kmh == float(speed)


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_select_command_template_renders_a_valid_select(program: str) -> None:
    cmps = _config(topics_for())["cmps"]
    body = HA.from_string(cmps["program"]["cmd_tpl"]).render(value=program)
    request = requests.parse_request("select", body.encode())
    assert isinstance(request, requests.SelectRequest)
    assert request.program == program


def test_every_command_entity_publishes_at_qos_1() -> None:
    # Not only at the root: older Home Assistant versions do not pass the root's qos down.
    config = _config_with_inputs(topics_for())
    commanders = {k: c for k, c in config["cmps"].items() if "cmd_t" in c}
    assert set(commanders) == {"target_speed", "program"} | {f"button_{b}" for b in BUTTONS}
    assert {k: c.get("qos") for k, c in commanders.items()} == dict.fromkeys(commanders, 1)
    assert config["cmps"]["button_estop"]["qos"] == 1
    assert config["qos"] == 1


# --- against a real broker ------------------------------------------------------------------------


async def _next_on(user: User, topic: str, seen: int, timeout: float = 5.0) -> Any:
    """The first payload on `topic` after the `seen` ones already there."""
    async with asyncio.timeout(timeout):
        while True:
            payloads = user.on(topic)
            if len(payloads) > seen:
                return payloads[seen]
            user.arrived.clear()
            await user.arrived.wait()


async def _press(user: User, topic: str, payload: str, response_topic: str) -> dict[str, Any]:
    """Publish as Home Assistant does (no id) and return the next response on the topic."""
    seen = len(user.on(response_topic))
    await user.client.publish(topic, payload, qos=1)
    response: dict[str, Any] = await _next_on(user, response_topic, seen)
    return response


async def _discovered(user: User, topics: Topics) -> dict[str, Any]:
    config: dict[str, Any] = await user.wait_for(topics.discovery, lambda p: isinstance(p, dict))
    return config


async def test_the_retained_discovery_message_arrives_with_the_structure(broker: Broker) -> None:
    async with bridged(broker) as b:
        config = await _discovered(b.user, b.topics)
        check_structure(config, b.topics, sorted(b.rig.controller.programs))
        assert b.topics.discovery == f"homeassistant/device/treadctl_{b.settings.device.id}/config"
        # Retained: a client that subscribes later (Home Assistant starting) gets it too.
        async with user_client(broker, b.topics) as late:
            again = await _discovered(late, b.topics)
            assert again == config
            messages = [m for m in late.messages if m.topic.value == b.topics.discovery]
            assert messages[0].retain
            # So is the state, and it carries every field the state templates read.
            state = await late.wait_for(b.topics.state)
        telemetry = await b.user.wait_for(b.topics.telemetry)
        for key, component in config["cmps"].items():
            if "val_tpl" not in component:
                continue
            payload = state if component["stat_t"] == b.topics.state else telemetry
            for path in FIELD.findall(component["val_tpl"]):
                assert _has_path(payload, path), f"{key}: value_json.{path} not in {payload}"


async def test_home_assistant_birth_message_makes_the_bridge_send_discovery_again(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bridged(broker) as b:
        # The bridge answers a birth message by scheduling `_rediscover` (which waits a random
        # delay of up to 1 s, as Home Assistant asks): counted here, so "not sent again" is
        # known once the message was dealt with, however slowly anything is delivered.
        rediscover = b.bridge._rediscover
        scheduled: list[object] = []

        def counted(client: Any) -> Coroutine[Any, Any, None]:
            scheduled.append(client)
            return rediscover(client)

        monkeypatch.setattr(b.bridge, "_rediscover", counted)

        async def dealt_with() -> None:
            """Messages are taken in order: once a later command is answered, the bridge has
            dealt with everything the user published before it."""
            assert (await b.user.request("heartbeat"))["ok"]

        await _discovered(b.user, b.topics)
        await dealt_with()  # and the discovery and state of the connection came before
        before = len(b.user.on(b.topics.discovery))
        states = len(b.user.on(b.topics.state))
        # Not Home Assistant's birth message: ignored.
        await b.user.client.publish(b.topics.ha_status, b"offline", qos=1)
        await dealt_with()
        assert scheduled == []
        assert len(b.user.on(b.topics.discovery)) == before
        await b.user.client.publish(b.topics.ha_status, b"online", qos=1)
        await dealt_with()
        assert len(scheduled) == 1
        again = await _next_on(b.user, b.topics.discovery, before, timeout=3.0)
        check_structure(again, b.topics, sorted(b.rig.controller.programs))
        # The state follows, so entities get their values at once.
        await _next_on(b.user, b.topics.state, states, timeout=3.0)


async def test_buttons_pressed_as_home_assistant_presses_them(broker: Broker) -> None:
    async with bridged(broker) as b:
        buttons = {
            str(b.topics.command_name(c["cmd_t"])): c
            for c in _by_platform(await _discovered(b.user, b.topics), "button").values()
        }

        async def press(name: str) -> dict[str, Any]:
            button = buttons[name]
            return await _press(b.user, button["cmd_t"], button["pl_prs"], b.topics.response(name))

        stop = await press("stop")
        assert stop["ok"], stop
        assert stop["id"] is None
        assert stop["error"] is None
        reset = await press("reset")
        assert reset["ok"], reset

        start = await press("start")  # nothing selected yet
        assert not start["ok"]
        assert start["error"]["code"] == "invalid_field"
        assert b.rig.controller.mode is Mode.IDLE

        pause = await press("pause")  # nothing running
        assert pause["error"]["code"] == "not_allowed_in_mode"

        estop = await press("estop")
        assert estop["ok"], estop
        await b.rig.mode(Mode.ESTOP, 0.1)  # already latched when the answer came
        await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "estop")
        reset = await press("reset")
        assert reset["ok"], reset
        await b.rig.mode(Mode.IDLE, 0.1)


async def test_the_number_entity_sets_the_belt_speed(broker: Broker) -> None:
    async with bridged(broker) as b:
        (number,) = _by_platform(await _discovered(b.user, b.topics), "number").values()
        response = await _press(
            b.user, number["cmd_t"], _fill(number["cmd_tpl"], "1.0"), b.topics.response("set")
        )
        assert response["ok"], response
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh > 0, what="the belt moving")
        state = await b.user.wait_for(
            b.topics.state, lambda s: s["mode"] == "running" and s["target"]["speed_kmh"] > 0
        )
        assert state["program"] == "manual"
        assert state["target"]["walk"] == "forward"  # walk omitted, idle before: forward

        too_fast = _fill(number["cmd_tpl"], str(number["max"] + 1))
        response = await _press(b.user, number["cmd_t"], too_fast, b.topics.response("set"))
        assert response["error"]["code"] == "out_of_range"


async def test_the_select_entity_chooses_the_program_start_runs(broker: Broker) -> None:
    async with bridged(broker) as b:
        config = await _discovered(b.user, b.topics)
        (select,) = _by_platform(config, "select").values()
        program = "alghadir2019-knee-oa"
        assert program in select["options"]
        response = await _press(
            b.user, select["cmd_t"], _fill(select["cmd_tpl"], program), b.topics.response("select")
        )
        assert response["ok"], response
        state = await b.user.wait_for(
            b.topics.state, lambda s: s.get("selected_program") == program
        )
        assert state["mode"] == "idle"

        # The start button (no program in its payload) runs the selected program.
        start = config["cmps"]["button_start"]
        response = await _press(b.user, start["cmd_t"], start["pl_prs"], b.topics.response("start"))
        assert response["ok"], response
        state = await b.user.wait_for(
            b.topics.state, lambda s: s["mode"] == "running" and s["program"] == program
        )
        assert state["selected_program"] == program


async def test_an_unknown_program_via_the_select_is_refused(broker: Broker) -> None:
    async with bridged(broker) as b:
        (select,) = _by_platform(await _discovered(b.user, b.topics), "select").values()
        body = _fill(select["cmd_tpl"], "no-such-program")
        response = await _press(b.user, select["cmd_t"], body, b.topics.response("select"))
        assert not response["ok"]
        assert response["error"]["code"] == "unknown_program"
        assert "no-such-program" in response["error"]["message"]
        assert b.bridge.selected_program is None  # decided before the answer was sent
        assert all(s.get("selected_program") is None for s in b.user.on(b.topics.state))
