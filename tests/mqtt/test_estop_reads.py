"""The broker socket as the daemon reads it (treadctl/mqtt/socket_reads.py): an e-stop behind a
queued flood of commands is acted on before the commands ahead of it are decoded, and the
daemon's socket sends without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiomqtt

from mqtt.brokers import Broker
from mqtt.harness import Bridged, bridged, flood_commands
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.mqtt.socket_reads import take_over_reads, waiting_bytes

AHEAD = 200  # commands queued ahead of the e-stop (fewer than one wake-up reads)


def _socket(b: Bridged) -> tuple[aiomqtt.Client, socket.socket]:
    client = b.bridge._link.client
    assert client is not None
    sock = client._client.socket()
    assert isinstance(sock, socket.socket)
    return client, sock


def _peek(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


async def test_an_estop_behind_a_queued_flood_is_acted_on_before_the_flood_is_decoded(
    broker: Broker,
) -> None:
    async with bridged(broker, user_sees_commands=False, telemetry={"rate_hz": 10.0}) as b:
        assert (await b.user.request("set", {"speed_kmh": 1.5, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.2, 10, "at speed")
        client, sock = _socket(b)
        loop = asyncio.get_running_loop()
        # The bridge stops reading its socket while the flood and the e-stop arrive: they wait
        # in the kernel, as when the daemon is busy.
        loop.remove_reader(sock.fileno())
        decoded: list[str] = []
        at_estop: list[int] = []
        decode, estop_now = b.bridge._commands.decode, b.rig.controller.emergency_stop_now

        def counting_decode(name: str, *args: Any) -> Any:
            decoded.append(name)
            return decode(name, *args)

        def noting_estop(*args: Any) -> Any:
            at_estop.append(len(decoded))
            return estop_now(*args)

        b.bridge._commands.decode = counting_decode  # type: ignore[method-assign, assignment]
        b.rig.controller.emergency_stop_now = noting_estop  # type: ignore[method-assign, assignment]
        topic = b.topics.cmd("estop").encode()
        try:
            await flood_commands(broker, b.topics, AHEAD, then=("estop", b"\xff not json"))
            await b.rig.until(lambda: topic in _peek(sock), 5, "the e-stop in the socket")
            assert waiting_bytes(sock) > AHEAD * 20
            t0 = time.monotonic()
            assert take_over_reads(client)  # reading again
            await b.rig.mode(Mode.ESTOP, 2)
        finally:
            take_over_reads(client)
        await b.rig.until(lambda: Op.STOP in b.rig.ops_since(t0), 2, "the stop byte on the wire")
        # Every command ahead of it was read, none decoded yet: the e-stop went first.
        assert at_estop == [0]
        estop = await b.user.wait_for(b.topics.response("estop"))
        assert estop["ok"] is True
        assert estop["id"] is None  # nothing to echo from a payload that is not JSON
        state = await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "estop")
        assert state["mode"] == "estop"
        event = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "estop")
        assert event["cause"] == "command"
        # and the flood was not lost: every command of it is answered (refused) after
        await b.rig.until(lambda: len(decoded) == AHEAD, 5, "the flood decoded")
        starts = await b.user.wait_for(b.topics.response("start"), lambda p: p["ok"] is False)
        assert starts["ok"] is False
        assert b.rig.controller.supervisor.latched is not None


async def test_the_daemons_broker_socket_sends_without_nagles_delay(broker: Broker) -> None:
    async with bridged(broker) as b:
        _, sock = _socket(b)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        # and commands still work through the reader that replaced aiomqtt's
        assert (await b.user.request("heartbeat"))["ok"]
