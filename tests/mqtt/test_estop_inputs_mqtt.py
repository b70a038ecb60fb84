"""A dedicated e-stop input as MQTT clients and Home Assistant see it: its health in `state`,
its changes as events, and a binary sensor per input in discovery."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import jinja2

from control.estop_rig import attached, box_config, healthy, wired
from mqtt.brokers import Broker
from mqtt.daemon_task import daemon_running
from mqtt.harness import bridged, settings_for
from mqtt.snapshots import OK_BOX, PRESSED, idle_snapshot, topics_for
from treadctl.config.models import EStopInputConfig
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.safety import EStopCause
from treadctl.mqtt.discovery import discovery_config
from treadctl.sim.estop_box import SimulatedButtonBox


def box_state(name: str) -> Any:
    return lambda p: isinstance(p, dict) and p.get("estop_inputs", {}).get(name)


async def test_state_and_events_carry_the_input_and_a_press_shows_as_estop(
    broker: Broker, tmp_path: Path
) -> None:
    link = tmp_path / "box"
    async with (
        bridged(broker) as b,
        SimulatedButtonBox(link=link) as box,
        attached(b.rig, wired(b.rig, box_config(link))) as item,
    ):
        await healthy(b.rig, item)
        ok = await b.user.wait_for(
            b.topics.state, lambda p: box_state("box")(p) and p["estop_inputs"]["box"]["healthy"]
        )
        assert ok["estop_inputs"]["box"]["kind"] == "heartbeat"
        box.press()
        pressed = await b.user.wait_for(
            b.topics.state,
            lambda p: box_state("box")(p) and p["estop_inputs"]["box"]["status"] == "pressed",
        )
        assert pressed["mode"] == "estop"
        assert pressed["estop_inputs"]["box"]["healthy"] is False
        event = await b.user.wait_for(b.topics.event, lambda p: p.get("type") == "estop")
        assert event["cause"] == "estop_input"
        change = await b.user.wait_for(
            b.topics.event, lambda p: p.get("type") == "estop_input" and p["status"] == "pressed"
        )
        assert (change["input"], change["healthy"]) == ("box", False)
        refused = await b.user.request("reset")
        assert refused["ok"] is False
        assert refused["error"]["code"] == "estop_input"


def test_discovery_has_a_safety_binary_sensor_per_input_that_renders() -> None:
    topics = topics_for("t1")
    config = discovery_config(
        topics,
        programs=["p"],
        max_speed_kmh=6.0,
        model="woodway",
        version="0",
        estop_inputs=["box", "mushroom"],
    )
    sensor = config["cmps"]["estop_input_box"]
    assert (sensor["p"], sensor["dev_cla"], sensor["stat_t"]) == (
        "binary_sensor",
        "safety",
        topics.state,
    )
    assert "estop_input_mushroom" in config["cmps"]
    snap = dataclasses.replace(idle_snapshot(), estop_inputs=(OK_BOX, PRESSED))
    env = jinja2.Environment(autoescape=False)
    render = {
        key: env.from_string(config["cmps"][key]["val_tpl"]).render(value_json=snap.state_dict())
        for key in ("estop_input_box", "estop_input_mushroom")
    }
    assert render == {"estop_input_box": "OFF", "estop_input_mushroom": "ON"}  # ON = unsafe


async def test_the_daemon_runs_configured_inputs_and_refuses_starts_until_healthy(
    broker: Broker, tmp_path: Path
) -> None:
    link = tmp_path / "box"  # plugged in only later
    entry = EStopInputConfig(name="box", kind="heartbeat", port=str(link), reconnect_s=0.1)
    settings = settings_for(broker).model_copy(update={"estop_inputs": (entry,)})
    async with daemon_running(settings) as controller:
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "treadctl.estop_input[box]" in names  # in the daemon's TaskGroup
        refused = await controller.execute(c.ManualSet(1.0, WalkDirection.FORWARD))
        assert (refused.ok, refused.code) == (False, "estop_input")
        async with SimulatedButtonBox(link=link) as box:
            async with asyncio.timeout(3):
                while controller.supervisor.input_refusal() is not None:
                    await asyncio.sleep(0.02)
            box.press()
            async with asyncio.timeout(1):
                while controller.supervisor.latched is None:
                    await asyncio.sleep(0.01)
            assert controller.supervisor.latched.cause is EStopCause.INPUT
