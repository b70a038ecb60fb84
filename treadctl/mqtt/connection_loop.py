"""One broker connection at a time: connect, announce, serve, reconnect with backoff, goodbye.

After each connect it subscribes, publishes `online`, then lets its owner add what a new
connection owes (discovery, the state) and runs the owner's workers until one fails (the
connection lost). A message on `…/cmd/estop` never waits: paho's message callback hands it to
`on_estop`, before aiomqtt makes a message of it or queues it, and paho is handed
everything the socket holds at each wake-up (socket_reads.py), so an e-stop behind a flood of
commands is not read one loop iteration per message ahead of it.

Shutdown is cancellation, and it must end the loop whatever the broker does: aiomqtt waits for
the broker's acknowledgements with Python 3.11's `asyncio.wait_for`, which can swallow a
cancellation (treadctl/tasks.py). Every such await is followed by a check of the task's pending
cancel requests, and every wait for other tasks to end is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, NoReturn

import aiomqtt
import paho.mqtt.client as paho
import structlog
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from treadctl.config.models import MqttConfig
from treadctl.mqtt.backoff import Backoff
from treadctl.mqtt.connection import (
    MqttSetupError,
    credentials,
    new_client,
    protocol_of,
    tls_context,
)
from treadctl.mqtt.outbox import OUTBOX_SIZE
from treadctl.mqtt.socket_reads import take_over_reads
from treadctl.mqtt.socket_writes import take_over_writes
from treadctl.mqtt.throttle import LogThrottle
from treadctl.mqtt.topics import Topics
from treadctl.tasks import cancel_and_wait, checked, checkpoint

log = structlog.get_logger(__name__)

INBOX_SIZE = 1024  # commands waiting to be parsed; beyond it paho's messages are dropped
# Shutdown is bounded whatever the broker does; with these, one cancellation ends the bridge
# within about 4 s.
GOODBYE_S = 1.0  # time allowed to publish `offline` on shutdown
DISCONNECT_S = 1.0  # and for the DISCONNECT after it (aiomqtt alone would wait 10 s)
# Session and spawned tasks have nothing to clean up: a cancelled one ends at once, or it
# swallowed the request and is cancelled again; this long at most, then it is logged and left.
TASKS_END_S = 1.0

Workers = Callable[[aiomqtt.Client], dict[str, Coroutine[Any, Any, None]]]
# An e-stop's payload and MQTT 5 properties, handed over inside paho's socket read.
EStopHandler = Callable[[bytes, Properties | None], None]


@contextlib.asynccontextmanager
async def _connected(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """`async with client`, except that leaving on a cancellation gives the disconnect
    DISCONNECT_S: aiomqtt waits for it up to its 10 s timeout, and a shutdown must not wait on
    the broker. (The abandoned client is not reused: a new one per connection.)"""
    await client.__aenter__()
    try:
        yield client
    except asyncio.CancelledError:
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(DISCONNECT_S):
                await client.__aexit__(None, None, None)
        raise
    except BaseException as exc:
        await client.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await client.__aexit__(None, None, None)


def _route_estop(client: aiomqtt.Client, topic: str, on_estop: EStopHandler) -> None:
    """Have paho's message callback hand `topic` to `on_estop` and everything else to aiomqtt's:
    the stop is written inside the socket read that parsed it, before aiomqtt makes a message of
    it and queues it. (paho's per-topic `message_callback_add` would do the same through its
    topic matcher, which costs every message ten more frames: bench/estop_path.py.)"""
    mqtt = client._client  # noqa: SLF001 - aiomqtt has no hook ahead of its message conversion
    queue = mqtt.on_message
    assert queue is not None  # aiomqtt's own, set when the client is made

    def on_message(paho_client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.topic == topic:
            on_estop(bytes(message.payload), message.properties)
        else:
            queue(paho_client, userdata, message)

    mqtt.on_message = on_message


class ConnectionLoop:
    """Run `run()` as a task of its own; cancel it to stop."""

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        *,
        backoff: Backoff,
        on_estop: EStopHandler,
        online: Callable[[aiomqtt.Client], Awaitable[None]],
        workers: Workers,
        broker_state: Callable[[bool], None],
        throttle: LogThrottle,
    ) -> None:
        self.config = config
        self.topics = topics
        self.backoff = backoff
        self._on_estop = on_estop
        self._online = online
        self._workers = workers
        self._broker_state = broker_state
        self._throttle = throttle
        self.connected = asyncio.Event()
        self.connections = 0  # successful connects so far (tests and status)
        self.client: aiomqtt.Client | None = None  # while serving
        self._broker_up: bool | None = None

    async def run(self) -> NoReturn:
        """Connect, serve, reconnect, until cancelled. Checks its own task's pending cancel
        requests (treadctl/tasks.py)."""
        self._report_broker(up=False)
        try:
            while True:
                await self._connect_once()
                # Connecting and disconnecting wait with 3.11's wait_for: a cancellation that
                # landed there must end the loop, not send it to the reconnect sleep.
                checkpoint()
                self.client = None
                self.connected.clear()
                self._report_broker(up=False)
                delay = self.backoff.next_delay()
                log.info("MQTT reconnecting", in_s=round(delay, 2))
                await asyncio.sleep(delay)
        finally:
            self.client = None
            self.connected.clear()

    async def _connect_once(self) -> None:
        cancelled = False
        try:
            client = await self._new_client()
            async with _connected(client):
                try:
                    self.backoff.reset()
                    await self._session(client)
                except asyncio.CancelledError:
                    cancelled = True
                    raise
        except* aiomqtt.MqttError as group:
            cause = group.exceptions[0]
            self._throttle.warn("connection", "MQTT connection failed or lost", error=str(cause))
        except* (MqttSetupError, OSError) as group:  # unreadable password file or certificate
            self._throttle.warn("connection", "MQTT setup failed", error=str(group.exceptions[0]))
        if cancelled:
            # aiomqtt's __aexit__ can replace the CancelledError with an MqttError while it
            # disconnects; swallowing it would leave shutdown waiting for this task forever.
            raise asyncio.CancelledError

    async def _new_client(self) -> aiomqtt.Client:
        # A new Client per attempt: reusing one after a failed connect is fragile (aiomqtt #288).
        creds, tls = await asyncio.to_thread(
            lambda: (credentials(self.config), tls_context(self.config))
        )
        client = new_client(
            self.config,
            f"treadctl-{self.topics.device_id}",
            creds=creds,
            tls=tls,
            will=aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True),
            max_queued_incoming_messages=INBOX_SIZE,
        )
        _route_estop(client, self.topics.cmd("estop"), self._on_estop)
        client.pending_calls_threshold = OUTBOX_SIZE  # the outbox bounds what is pending
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        try:
            checkpoint()  # CONNACK was awaited with 3.11's wait_for
            take_over_reads(client)  # a backlog read at once, ACKs not delayed
            take_over_writes(client)  # a packet sent as it is queued
            await self._announce(client)
            await self._serve(client)
        except asyncio.CancelledError:
            await self._goodbye(client)
            raise

    async def _announce(self, client: aiomqtt.Client) -> None:
        """What every new connection owes: subscriptions, `online`, then the owner's part."""
        await self._subscribe_commands(client)
        await checked(client.subscribe(self.topics.heart_rate, qos=0))
        if self.config.discovery:
            await checked(client.subscribe(self.topics.ha_status, qos=1))
        await checked(client.publish(self.topics.availability, b"online", qos=1, retain=True))
        await self._online(client)

    async def _subscribe_commands(self, client: aiomqtt.Client) -> None:
        """With MQTT 5, "retain as published": a retained command published while we are
        subscribed keeps its retain flag, so it is recognised and ignored like one the broker
        replays. (A 3.1.1 broker clears the flag on live delivery; there is nothing to ask.)"""
        if protocol_of(self.config) is aiomqtt.ProtocolVersion.V5:
            options = SubscribeOptions(qos=1, retainAsPublished=True)
            await checked(client.subscribe(self.topics.commands, options=options))
        else:
            await checked(client.subscribe(self.topics.commands, qos=1))

    async def _serve(self, client: aiomqtt.Client) -> None:
        self.connections += 1
        self.client = client
        self.connected.set()
        self._report_broker(up=True)
        log.info("MQTT connected", host=self.config.host, port=self.config.port)
        # Not a TaskGroup: on 3.11 a TaskGroup whose child fails while its owner is being
        # cancelled raises the child's error instead of the CancelledError (errors have
        # priority), and the reconnect loop would swallow the shutdown.
        tasks = [
            asyncio.create_task(coro, name=name) for name, coro in self._workers(client).items()
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # the first failure (the connection lost) ends the session
        finally:
            await cancel_and_wait(tasks, timeout_s=TASKS_END_S, what="MQTT session tasks")

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """`offline` on shutdown, bounded: a hung broker gets GOODBYE_S, then the last will
        covers it."""
        self.client = None
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(GOODBYE_S):
                await client.publish(self.topics.availability, b"offline", qos=1, retain=True)

    def _report_broker(self, *, up: bool) -> None:
        if self._broker_up is up:
            return
        self._broker_up = up
        # The controller's supervisor decides what a lost broker means (safety.broker_loss_s);
        # a safety input, applied at once and never refused.
        self._broker_state(up)
