"""A telemetry sample the broker socket has not taken yet is not queued behind: the next
sample due meanwhile is skipped, and samples flow again once the socket drained
(treadctl/mqtt/outbox.py). A real broker, a real socket made to fill: its send buffer at the
kernel's least and 2 MB queued ahead in paho; the sample grid on a stepped clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket

import aiomqtt
import structlog

from mqtt.brokers import Broker
from mqtt.snapshots import running_snapshot, topics_for
from treadctl.mqtt.outbox import Outbox
from treadctl.mqtt.socket_writes import qos0_publisher, take_over_writes
from treadctl.mqtt.throttle import LogThrottle


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _elapsed_of(receiver: aiomqtt.Client, topic: str, count: int) -> list[float]:
    """`elapsed_s` of the next `count` telemetry messages (each sample's own mark)."""
    out: list[float] = []
    async with asyncio.timeout(10):
        async for message in receiver.messages:
            if message.topic.matches(topic):
                assert isinstance(message.payload, bytes)
                out.append(json.loads(message.payload)["elapsed_s"])
                if len(out) == count:
                    return out
    raise AssertionError("unreachable")  # pragma: no cover


async def test_samples_skip_while_the_socket_holds_one_and_resume_after(broker: Broker) -> None:
    topics = topics_for("backlog")
    clock = SteppedClock()
    outbox = Outbox(
        topics,
        telemetry_rate_hz=1.0,
        wall=lambda: 1_700_000_000.0,
        throttle=LogThrottle(structlog.get_logger("test")),
        clock=clock,
    )
    async with (
        aiomqtt.Client(broker.host, broker.port, identifier="backlog-daemon") as daemon,
        aiomqtt.Client(broker.host, broker.port, identifier="backlog-user") as user,
    ):
        await user.subscribe(topics.telemetry, qos=0)
        take_over_writes(daemon)
        sender = asyncio.create_task(outbox.send_telemetry(daemon), name="test.telemetry")
        try:
            await asyncio.sleep(0)  # the sender holds the connection's publish now
            snap = running_snapshot()
            outbox.state(snap, None)  # the first sample is due at once
            assert await _elapsed_of(user, topics.telemetry, 1) == [60.0]

            sock = daemon._client.socket()
            assert isinstance(sock, socket.socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            qos0_publisher(daemon)("backlog/big", b"x" * 2_000_000)  # most of it waits in paho
            for elapsed in (61.0, 62.0, 63.0):  # one due sample each, in one turn of the loop
                clock.now += 1.0
                outbox.state(dataclasses.replace(snap, elapsed_s=elapsed), None)
            # 61 went into paho's queue behind the 2 MB; 62 and 63 found it still there.
            assert await _elapsed_of(user, topics.telemetry, 1) == [61.0]

            clock.now += 1.0
            outbox.state(
                dataclasses.replace(snap, elapsed_s=64.0), None
            )  # the socket drained: sent
            assert await _elapsed_of(user, topics.telemetry, 1) == [64.0]
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
