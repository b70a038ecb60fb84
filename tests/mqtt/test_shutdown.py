"""Shutdown always ends (issue 15, defect 4), also on Python 3.11.

There `asyncio.wait_for`, which aiomqtt uses for CONNACK, SUBACK, PUBACK and the disconnect,
drops a cancellation that lands once the awaited result is already set (gh-86296). The tests below
issue the cancellation from inside paho's callback, right after aiomqtt has set that result: the
same loop iteration, every time, as in ../shared/repro/swallowed_cancel.py. On 3.12 and later the
cancellation is not lost and the tests pass trivially.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import aiomqtt
import paho.mqtt.client as paho
import pytest

from control.rig import rig
from mqtt.brokers import Broker
from mqtt.harness import BRIDGE_END_S, bridged, settings_for, user_client
from mqtt.processes import simulator, start_daemon, write_config
from treadctl.config.models import Settings
from treadctl.daemon.shutdown import EXIT_SHUTDOWN_STUCK, SHUTDOWN_GRACE_S
from treadctl.mqtt.bridge import MqttBridge
from treadctl.mqtt.topics import Topics
from treadctl.tasks import cancel_and_wait, stacks

Callback = Callable[..., None]


def _is_bridge(client: aiomqtt.Client) -> bool:
    return client.identifier.startswith("treadctl-")


def _after(original: Callback, then: Callable[[aiomqtt.Client], None]) -> Callback:
    """aiomqtt's callback as it is, then `then`: in the same loop iteration, after aiomqtt has
    set the result its connect, subscribe or publish is waiting for."""

    def hooked(self: aiomqtt.Client, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        then(self)

    return hooked


async def _ends_within(task: asyncio.Task[Any], timeout: float) -> bool:
    done, _ = await asyncio.wait([task], timeout=timeout)
    return task in done


@pytest.mark.parametrize("ack", ["_on_connect", "_on_subscribe", "_on_publish"])
async def test_a_cancellation_landing_with_an_acknowledgement_still_ends_the_bridge(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, ack: str
) -> None:
    """The bridge is cancelled (SIGTERM, a test's teardown) as its first CONNACK, SUBACK or
    PUBACK (the `online` publish) arrives. One cancellation must end it: before the fix it went
    on connected, or to its reconnect sleep, for ever with `cancelling() == 1`."""
    bridge_task: asyncio.Task[NoReturn] | None = None
    fired: list[str] = []

    def cancel_bridge(client: aiomqtt.Client) -> None:
        if _is_bridge(client) and not fired and bridge_task is not None:
            fired.append(ack)
            bridge_task.cancel()

    monkeypatch.setattr(aiomqtt.Client, ack, _after(getattr(aiomqtt.Client, ack), cancel_bridge))
    async with rig() as r:
        bridge = MqttBridge(settings_for(broker), r.controller, programs=[], model="w", version="t")
        bridge_task = asyncio.create_task(bridge.run(), name="test.bridge")
        try:
            ended = await _ends_within(bridge_task, BRIDGE_END_S)
            assert fired == [ack], "the acknowledgement never came"
            assert ended, (
                f"bridge still running {BRIDGE_END_S} s after one cancellation "
                f"(cancelling={bridge_task.cancelling()}):\n{''.join(stacks([bridge_task]))}"
            )
            assert bridge_task.cancelled()
            assert bridge.connections == 0, "it must not have gone on to serve"
        finally:
            await cancel_and_wait([bridge_task], timeout_s=5, what="test cleanup")


@pytest.fixture
def publish_topics(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[int, int], str]:
    """The topic of every publish, by (paho client, message id): PUBACK only names the id."""
    topics: dict[tuple[int, int], str] = {}
    original = paho.Client.publish

    def publish(self: paho.Client, topic: str, *args: Any, **kwargs: Any) -> paho.MQTTMessageInfo:
        info = original(self, topic, *args, **kwargs)
        topics[(id(self), info.mid)] = topic
        return info

    monkeypatch.setattr(paho.Client, "publish", publish)
    return topics


async def test_a_session_task_cancelled_as_its_publish_is_acknowledged_still_ends(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, publish_topics: dict[tuple[int, int], str]
) -> None:
    """The fuzz test's teardown hang (../shared/repro/hang-taskdump-live.txt): the state
    publisher was cancelled as the PUBACK of its state message arrived, went back to waiting for
    the next state and the bridge waited for it without a bound. Here it is cancelled from inside
    that PUBACK callback: it must end at once, and the bridge must still end on its own
    cancellation (the harness checks that, bounded)."""
    state_topic: list[str] = []
    cancelled: list[asyncio.Task[Any]] = []

    def on_publish(
        self: aiomqtt.Client, client: paho.Client, userdata: Any, mid: int, *rest: Any
    ) -> None:
        original(self, client, userdata, mid, *rest)
        if state_topic and not cancelled and publish_topics.get((id(client), mid)) in state_topic:
            task = next(t for t in asyncio.all_tasks() if t.get_name() == "treadctl.mqtt.state")
            cancelled.append(task)
            task.cancel()  # what the session's own shutdown does to it

    original = aiomqtt.Client._on_publish
    monkeypatch.setattr(aiomqtt.Client, "_on_publish", on_publish)
    async with bridged(broker) as b:
        state_topic.append(b.topics.state)
        program = min(b.rig.controller.programs)
        assert (await b.user.request("select", {"program": program}))["ok"]  # a new state
        await b.rig.until(lambda: bool(cancelled), 5, "the state publish acknowledged")
        publisher = cancelled[0]
        assert await _ends_within(publisher, 1.0), (
            f"the state publisher lost its cancellation:\n{''.join(stacks([publisher]))}"
        )
        assert publisher.cancelled()


async def test_sigterm_with_a_hung_broker_ends_the_daemon_without_the_last_resort(
    own_broker: Broker, tmp_path: Path
) -> None:
    """The broker stops answering (SIGSTOP) and the daemon gets SIGTERM: `offline` cannot be
    delivered, yet the daemon exits 0 within a few seconds, well before the last resort
    (SHUTDOWN_GRACE_S, exit EXIT_SHUTDOWN_STUCK). Before the fix a session task lost its
    cancellation here and the bridge never ended."""
    assert own_broker.proc is not None
    link = tmp_path / "treadmill"
    device = f"h{own_broker.port}"
    config = tmp_path / "treadctl.toml"
    write_config(config, own_broker, link, device)
    topics = Topics.from_settings(Settings(device={"id": device}))
    async with simulator(link), user_client(own_broker, topics) as user:
        daemon = await start_daemon(config)
        try:
            await user.wait_for(topics.availability, lambda p: p == "online", 15)
            own_broker.proc.send_signal(signal.SIGSTOP)
            term_at = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(daemon.wait(), SHUTDOWN_GRACE_S + 5)
            except TimeoutError:
                code = None
            took = time.monotonic() - term_at
            assert code == 0, f"exit {code} after {took:.1f} s (last resort: {EXIT_SHUTDOWN_STUCK})"
            assert took < SHUTDOWN_GRACE_S - 2, f"shutdown took {took:.1f} s"
        finally:
            own_broker.proc.send_signal(signal.SIGCONT)
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()


def test_the_last_resort_says_so_and_exits_with_its_own_status() -> None:
    """What lets every daemon test see the last resort: the log line and a status other than 0
    (the tests that send SIGTERM expect 0)."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from treadctl import logs
        from treadctl.daemon import shutdown
        logs.configure("INFO", stream=sys.stdout, json=True)
        async def main():
            asyncio.get_running_loop().call_soon(shutdown.shutdown_stuck)
            await asyncio.sleep(10)
        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == EXIT_SHUTDOWN_STUCK != 0, proc
    assert "shutdown did not finish" in proc.stdout, proc
