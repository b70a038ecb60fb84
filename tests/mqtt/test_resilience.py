"""The e-stop under load, and the broker going away mid-session."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from control.rig import rig, with_rules
from mqtt.brokers import Broker
from mqtt.harness import (
    BRIDGE_END_S,
    Bridged,
    bridged,
    flood_commands,
    settings_for,
    user_client,
)
from teardown import finish
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.mqtt.bridge import MqttBridge
from treadctl.tasks import cancel_and_wait


def _first_stop_after(b: Bridged, t0: float) -> float | None:
    for r in b.rig.sim.wire.requests:
        if r.at >= t0 and getattr(r.request, "op", None) == Op.STOP:
            return r.at
    return None


async def test_estop_reaches_the_treadmill_promptly_under_telemetry_and_a_junk_flood(
    broker: Broker,
) -> None:
    # The user does not subscribe to the commands: the 4000 it floods are not its to hold (in the
    # test's own process their garbage collection alone held the loop ~100 ms).
    async with bridged(broker, user_sees_commands=False, telemetry={"rate_hz": 50.0}) as b:
        assert (await b.user.request("set", {"speed_kmh": 1.5, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.2, 10, "at speed")
        started = asyncio.Event()
        flood = asyncio.create_task(
            flood_commands(broker, b.topics, 4000, started=started), name="test.flood"
        )
        try:
            await started.wait()
            t0 = time.monotonic()
            await b.user.send_raw("estop", b"{}")
            await b.rig.until(lambda: _first_stop_after(b, t0) is not None, 5, "stop on wire")
            stop_at = _first_stop_after(b, t0)
            assert stop_at is not None
            latency_ms = (stop_at - t0) * 1000
            junk_answered = sum(len(b.user.on(b.topics.response(n))) for n in ("set", "start"))
            await flood
        finally:
            await finish(flood, "the command flood")
        await b.rig.mode(Mode.ESTOP, 2)
        await b.rig.until(lambda: b.rig.sim.belt.still, 5, "belt still")
        telemetry = b.user.on(b.topics.telemetry)
        assert len(telemetry) > 10
        # The figure for the closing note (not a timed assertion): see -s output.
        print(
            f"\ne-stop under load: MQTT publish -> stop byte at the treadmill {latency_ms:.2f} ms "
            f"(junk answered so far: {junk_answered}; telemetry messages: {len(telemetry)})",
            file=sys.stderr,
        )


async def test_broker_restart_mid_session_applies_the_policy_and_comes_back(
    own_broker: Broker,
) -> None:
    rules = with_rules(broker_loss_s=1.0)
    async with bridged(own_broker, rules) as b:
        assert (await b.user.request("set", {"speed_kmh": 1.5, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.2, 10, "at speed")
        await own_broker.akill()
        # safety.broker_loss_s = 1: a controlled stop (a ramp, not an e-stop)
        await b.rig.until(lambda: b.rig.controller.mode is Mode.STOPPING, 5, "stopping")
        await b.rig.mode(Mode.IDLE, 15)
        speeds = [abs(w.kmh) for w in b.rig.wire_speeds()]
        assert speeds[-1] == 0
        assert b.rig.controller.supervisor.latched is None  # controlled stop, not an e-stop
        await own_broker.astart()
        await b.rig.until(lambda: b.bridge.connections >= 2, 10, "reconnected")
        # a fresh client sees what the bridge re-published after reconnecting
        async with user_client(own_broker, b.topics) as fresh:
            assert await fresh.wait_for(b.topics.availability) == "online"
            state = await fresh.wait_for(b.topics.state)
            assert state["mode"] == "idle"
            discovery = await fresh.wait_for(b.topics.discovery)
            assert discovery["dev"]["ids"] == [f"treadctl_{b.topics.device_id}"]
            # and commands work again (subscriptions were renewed)
            assert (await fresh.request("heartbeat"))["ok"]
            finished = [e for e in b.user.on(b.topics.event) if e["type"] == "session_finished"]
            assert finished == [] or finished[-1]["cause"] == "broker_lost"


async def test_broker_loss_with_continue_keeps_the_session(own_broker: Broker) -> None:
    rules = with_rules(broker_loss_s=0.5, broker_loss_continue=True)
    async with bridged(own_broker, rules) as b:
        assert (await b.user.request("set", {"speed_kmh": 1.5, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.2, 10, "at speed")
        await own_broker.akill()
        # the grace time (0.5 s) runs out: `broker_lost`, and the session runs on past it
        await b.rig.until(lambda: "broker_lost" in b.rig.event_types(), 5, "broker_lost")
        await b.rig.ticks(10)
        assert b.rig.controller.mode is Mode.RUNNING
        assert b.rig.sim.belt.speed_kmh < -1.2
        await own_broker.astart()
        await b.rig.until(b.bridge.connected.is_set, 10, "reconnected")
        assert b.rig.controller.mode is Mode.RUNNING


async def test_an_unreadable_password_file_is_retried_not_fatal(broker: Broker) -> None:
    settings = settings_for(broker, mqtt={"username": "u", "password_file": "/nonexistent/pw"})
    async with rig() as r:
        bridge = MqttBridge(settings, r.controller, programs=[], model="woodway", version="test")
        task = asyncio.create_task(bridge.run(), name="test.bridge")
        try:
            await asyncio.sleep(1.0)
            assert not task.done()  # still trying, the daemon lives on
            assert bridge.connections == 0
            assert r.controller.mode is Mode.IDLE
        finally:
            await finish(task, "the bridge")


async def test_shutdown_completes_when_the_broker_hangs(own_broker: Broker) -> None:
    """The broker stops answering (SIGSTOP) and the bridge is cancelled, as at SIGTERM: the
    goodbye publish times out and the cancellation still ends the bridge (a swallowed
    cancellation once left a daemon unable to exit)."""
    settings = settings_for(own_broker)
    async with rig() as r:
        bridge = MqttBridge(settings, r.controller, programs=[], model="woodway", version="t")
        task = asyncio.create_task(bridge.run(), name="test.bridge")
        assert own_broker.proc is not None
        try:
            async with asyncio.timeout(10):
                await bridge.connected.wait()
            own_broker.proc.send_signal(signal.SIGSTOP)
            cancelled_at = time.monotonic()
            task.cancel()
            # `offline` gets GOODBYE_S (1 s) against the hung broker; nothing else may wait on it
            done, _ = await asyncio.wait([task], timeout=BRIDGE_END_S)
            took = time.monotonic() - cancelled_at
            assert task in done, f"the bridge still runs {took:.1f} s after its cancellation"
            assert task.cancelled()
        finally:
            own_broker.proc.send_signal(signal.SIGCONT)
            await cancel_and_wait([task], timeout_s=BRIDGE_END_S, what="test cleanup")
