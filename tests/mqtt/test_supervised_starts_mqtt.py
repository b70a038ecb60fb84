"""Supervised starts as MQTT clients see them (the CLI and the clinic service start over MQTT
too): `cmd/start` answered ok, awaiting; the retained state's `awaiting`; the events; GO on the
box starts it; the belt received nothing that moves it before. Real broker, real ptys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from control.estop_rig import start_button_box
from mqtt.brokers import Broker
from mqtt.harness import bridged, user_client
from treadctl.control.start_gate import StartRule
from treadctl.drivers.trackmaster_codec import Op

PROGRAM = "backward-intervals"
RULE = StartRule(required=True, buttons=("box",))
STARTS = {Op.START_WATCHDOG, Op.START, Op.SET_WEIGHT_OR_START}


def held(p: Any) -> bool:
    return isinstance(p, dict) and p.get("awaiting") is not None


async def test_start_is_held_in_the_state_until_go_then_runs(
    mqtt5_broker: Broker, tmp_path: Path
) -> None:
    """On mosquitto whatever TREADCTL_TEST_BROKER says: a later subscriber must be handed the
    retained state, which the embedded broker does not do."""
    broker = mqtt5_broker
    async with bridged(broker) as b, start_button_box(b.rig, tmp_path / "box", RULE) as box:
        t0 = time.monotonic()
        answer = await b.user.request("start", {"program": PROGRAM, "person": "mrs-k"})
        assert answer["ok"] is True
        assert "awaiting confirmation" in answer["message"]

        state = await b.user.wait_for(b.topics.state, held)
        assert state["mode"] == "idle"
        awaiting = state["awaiting"]
        assert {k: awaiting[k] for k in ("confirm", "program", "person", "inputs")} == {
            "confirm": "button",
            "program": PROGRAM,
            "person": "mrs-k",
            "inputs": ["box"],
        }
        assert 55 <= awaiting["expires_s"] <= 60
        assert awaiting["detail"].startswith("press GO on the button box (box)")
        pending = await b.user.wait_for(b.topics.event, lambda p: p.get("type") == "start_pending")
        assert (pending["program"], pending["timeout_s"]) == (PROGRAM, 60.0)

        # A client that connects now is handed the retained state: it says what is awaited.
        async with user_client(broker, b.topics) as late:
            retained = await late.wait_for(b.topics.state, held)
            assert retained["awaiting"]["program"] == PROGRAM

        second = await b.user.request("start", {"program": PROGRAM})
        assert (second["ok"], second["error"]["code"]) == (False, "start_pending")
        await b.rig.ticks(5)
        assert not [op for op in b.rig.ops_since(t0) if op in STARTS]
        assert all(w.kmh == 0 for w in b.rig.wire_speeds() if w.at >= t0)

        box.go()
        running = await b.user.wait_for(
            b.topics.state, lambda p: p.get("mode") == "running", timeout=5
        )
        assert running["awaiting"] is None
        await b.user.wait_for(b.topics.event, lambda p: p.get("type") == "start_confirmed")
        started = await b.user.wait_for(
            b.topics.event, lambda p: p.get("type") == "session_started"
        )
        assert started["person"] == "mrs-k"
        assert (await b.user.request("stop"))["ok"]


async def test_stop_cancels_the_held_start_and_the_state_says_so(
    broker: Broker, tmp_path: Path
) -> None:
    async with bridged(broker) as b, start_button_box(b.rig, tmp_path / "box", RULE) as box:
        t0 = time.monotonic()
        assert (await b.user.request("set", {"speed_kmh": 1.0, "walk": "forward"}))["ok"]
        await b.user.wait_for(b.topics.state, held)
        stopped = await b.user.request("stop")
        assert stopped["ok"] is True
        assert "cancelled" in stopped["message"]
        cancelled = await b.user.wait_for(
            b.topics.event, lambda p: p.get("type") == "start_cancelled"
        )
        assert (cancelled["program"], cancelled["detail"]) == ("manual", "stop command")
        await b.user.wait_for(
            b.topics.state, lambda p: isinstance(p, dict) and p.get("awaiting", 1) is None
        )
        box.go()
        await b.rig.ticks(5)
        assert not [op for op in b.rig.ops_since(t0) if op in STARTS]
        assert all(w.kmh == 0 for w in b.rig.wire_speeds() if w.at >= t0)
