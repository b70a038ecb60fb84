"""The broker socket as the daemon writes it (treadctl/mqtt/socket_writes.py): a packet is sent
as it is queued, without a writer registered on the event loop; what the socket cannot take at
once still goes out whole and in order, through a writer; a publish made inside one of paho's
callbacks goes out through a writer too (writing there would deadlock on paho's lock)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest

from mqtt.brokers import Broker
from treadctl.mqtt.socket_writes import qos0_publisher, take_over_writes


class Writers:
    """Counts the writers put on the loop for one client's socket (aiomqtt's way of sending)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: aiomqtt.Client) -> None:
        self.added = 0
        self._fd = _socket(client).fileno()
        self._add = loop.add_writer
        loop.add_writer = self._counting  # type: ignore[method-assign, assignment]

    def _counting(self, fd: Any, callback: Any, *args: Any) -> None:
        self.added += fd == self._fd
        self._add(fd, callback, *args)


def _socket(client: aiomqtt.Client) -> socket.socket:
    sock = client._client.socket()
    assert isinstance(sock, socket.socket)
    return sock


@pytest.fixture
async def clients(broker: Broker) -> AsyncIterator[tuple[aiomqtt.Client, aiomqtt.Client]]:
    async with (
        aiomqtt.Client(broker.host, broker.port, identifier="writes-sender") as sender,
        aiomqtt.Client(broker.host, broker.port, identifier="writes-receiver") as receiver,
    ):
        await receiver.subscribe("writes/#", qos=1)
        yield sender, receiver


async def received(receiver: aiomqtt.Client, count: int) -> list[bytes]:
    out: list[bytes] = []
    async with asyncio.timeout(10):
        async for message in receiver.messages:
            assert isinstance(message.payload, bytes)
            out.append(message.payload)
            if len(out) == count:
                return out
    raise AssertionError("unreachable")  # pragma: no cover


async def test_publishes_go_out_without_a_writer_on_the_loop(
    clients: tuple[aiomqtt.Client, aiomqtt.Client],
) -> None:
    sender, receiver = clients
    writers = Writers(asyncio.get_running_loop(), sender)
    await sender.publish("writes/before", b"0", qos=0)
    await received(receiver, 1)
    assert writers.added == 1  # aiomqtt's way: a writer for every packet
    take_over_writes(sender)
    payloads = [str(i).encode() for i in range(50)]
    for i, payload in enumerate(payloads):
        await sender.publish("writes/now", payload, qos=i % 2)
    assert await received(receiver, len(payloads)) == payloads
    assert writers.added == 1  # none more


async def test_what_the_socket_cannot_take_goes_out_whole_and_in_order(
    clients: tuple[aiomqtt.Client, aiomqtt.Client],
) -> None:
    sender, receiver = clients
    take_over_writes(sender)
    sock = _socket(sender)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel's least
    writers = Writers(asyncio.get_running_loop(), sender)
    big = [bytes([65 + i]) * 2_000_000 for i in range(3)]
    async with asyncio.TaskGroup() as tg:
        for i, payload in enumerate(big):
            tg.create_task(sender.publish("writes/big", payload, qos=1), name=f"test.big{i}")
        tg.create_task(sender.publish("writes/small", b"after", qos=1), name="test.small")
    assert writers.added >= 1  # the rest waited for the socket
    assert await received(receiver, 4) == [*big, b"after"]
    await sender.publish("writes/later", b"still", qos=0)  # and writing at once again after
    assert await received(receiver, 1) == [b"still"]


async def test_a_publish_inside_a_paho_callback_goes_out_through_a_writer(
    clients: tuple[aiomqtt.Client, aiomqtt.Client],
) -> None:
    """The controller's snapshot after an MQTT e-stop is taken inside paho's message callback,
    and the telemetry it may carry is published there (mqtt/outbox.py)."""
    sender, receiver = clients
    take_over_writes(sender)
    publish = qos0_publisher(sender)
    echoed: list[paho.MQTTMessageInfo] = []

    def echo(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        echoed.append(publish("writes/pong", bytes(message.payload)))

    await sender.subscribe("ping", qos=0)
    sender._client.message_callback_add("ping", echo)
    writers = Writers(asyncio.get_running_loop(), sender)
    await receiver.publish("ping", b"1", qos=0)
    assert await received(receiver, 1) == [b"1"]
    assert writers.added == 1  # deferred to the loop, not written under paho's lock
    assert echoed[0].is_published()
    publish("writes/after", b"2")  # outside a callback: at once again
    assert await received(receiver, 1) == [b"2"]
    assert writers.added == 1
