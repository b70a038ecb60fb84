"""The MQTT bridge: commands in, responses, state, telemetry and events out.

One connection at a time, reconnecting with capped, jittered backoff; after each connect it
subscribes, publishes `online`, discovery and the current state again. A message on
`…/cmd/estop` never waits: it is recognised as paho hands it over, before it reaches the message
queue, and the stop is on the serial port before the next MQTT packet is read.

Shutdown is cancellation, and it must end the bridge whatever the broker does: aiomqtt waits for
the broker's acknowledgements with Python 3.11's `asyncio.wait_for`, which can swallow a
cancellation (treadctl/tasks.py). Every such await is followed by a check of the task's pending
cancel requests, and every wait for other tasks to end is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from treadctl.config.models import Settings
from treadctl.control.controller import Controller
from treadctl.core import commands as cmd
from treadctl.core.commands import Command, Result
from treadctl.core.device import WalkDirection
from treadctl.core.safety import EStopCause
from treadctl.core.state import Event, Mode, Snapshot
from treadctl.mqtt import requests
from treadctl.mqtt.backoff import Backoff
from treadctl.mqtt.connection import (
    MqttSetupError,
    credentials,
    new_client,
    protocol_of,
    tls_context,
)
from treadctl.mqtt.discovery import discovery_payload
from treadctl.mqtt.requests import Request, RequestError, RequestId
from treadctl.mqtt.topics import Topics
from treadctl.tasks import cancel_and_wait, checked, checkpoint

log = structlog.get_logger(__name__)

OUTBOX_SIZE = 1024  # responses and events waiting for the broker
INBOX_SIZE = 1024  # commands waiting to be parsed; beyond it paho's messages are dropped
# Shutdown is bounded whatever the broker does; with these, one cancellation ends the bridge
# within about 4 s.
GOODBYE_S = 1.0  # time allowed to publish `offline` on shutdown
DISCONNECT_S = 1.0  # and for the DISCONNECT after it (aiomqtt alone would wait 10 s)
# Session and spawned tasks have nothing to clean up: a cancelled one ends at once, or it
# swallowed the request and is cancelled again; this long at most, then it is logged and left.
TASKS_END_S = 1.0
DISCOVERY_JITTER_S = 1.0  # Home Assistant asks for a random delay after its birth message
WARN_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    properties: Properties | None = None


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


def _inbox_type(
    estop_topic: str, on_estop: Callable[[aiomqtt.Message], None]
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's documented `queue_type` hook: paho's callback puts each message here, in the
    event loop's socket reader, so an e-stop is acted on before anything queued ahead of it."""

    class Inbox(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if item.topic.value == estop_topic:
                on_estop(item)
                return
            super().put_nowait(item)

    return Inbox


class MqttBridge:
    """Connects one controller to the broker. Run `run()` as a task; cancel it to stop."""

    def __init__(
        self,
        settings: Settings,
        controller: Controller,
        *,
        programs: Callable[[], Sequence[str]],
        model: str,
        version: str,
        backoff: Backoff | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = settings.mqtt
        self.topics = Topics.from_settings(settings)
        self.controller = controller
        self.programs = programs
        self.model = model
        self.version = version
        self.backoff = backoff or Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        self.wall = wall
        self.telemetry_period = 1.0 / settings.telemetry.rate_hz
        self.selected_program: str | None = None
        self.connected = asyncio.Event()
        self.connections = 0  # successful connects so far (tests and status)
        self._outbox: collections.deque[Outgoing] = collections.deque(maxlen=OUTBOX_SIZE)
        self._outbox_ready = asyncio.Event()
        self._state_payload: bytes | None = None
        self._state_ready = asyncio.Event()
        self._snapshot: Snapshot | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned: dict[str, float] = {}
        self._broker_up: bool | None = None
        self._client: aiomqtt.Client | None = None
        controller.add_listener(self._on_controller)

    # --- connection loop -------------------------------------------------------------------------

    async def run(self) -> NoReturn:
        """Connect, serve, reconnect, until cancelled. Run it as a task of its own: it checks
        that task's pending cancel requests (treadctl/tasks.py)."""
        self._report_broker(up=False)
        try:
            while True:
                await self._connect_once()
                # Connecting and disconnecting wait with 3.11's wait_for: a cancellation that
                # landed there must end the loop, not send it to the reconnect sleep.
                checkpoint()
                self._client = None
                self.connected.clear()
                self._report_broker(up=False)
                delay = self.backoff.next_delay()
                log.info("MQTT reconnecting", in_s=round(delay, 2))
                await asyncio.sleep(delay)
        finally:
            self._client = None
            self.connected.clear()
            await cancel_and_wait(list(self._tasks), timeout_s=TASKS_END_S, what="MQTT tasks")

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
            self._warn("connection", "MQTT connection failed or lost", error=str(cause))
        except* (MqttSetupError, OSError) as group:  # unreadable password file or certificate
            self._warn("connection", "MQTT setup failed", error=str(group.exceptions[0]))
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
            queue_type=_inbox_type(self.topics.cmd("estop"), self._on_estop_message),
            max_queued_incoming_messages=INBOX_SIZE,
        )
        client.pending_calls_threshold = OUTBOX_SIZE  # the outbox bounds what is pending
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        try:
            checkpoint()  # CONNACK was awaited with 3.11's wait_for
            await self._announce(client)
            await self._serve(client)
        except asyncio.CancelledError:
            await self._goodbye(client)
            raise

    async def _announce(self, client: aiomqtt.Client) -> None:
        """What every new connection owes: subscriptions, `online`, discovery, the state."""
        await self._subscribe_commands(client)
        await checked(client.subscribe(self.topics.heart_rate, qos=0))
        if self.config.discovery:
            await checked(client.subscribe(self.topics.ha_status, qos=1))
        await checked(client.publish(self.topics.availability, b"online", qos=1, retain=True))
        if self.config.discovery:
            await self._publish_discovery(client)
        if self._state_payload is not None:
            self._state_ready.clear()
            await checked(
                client.publish(self.topics.state, self._state_payload, qos=1, retain=True)
            )

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
        self._client = client
        self.connected.set()
        self._report_broker(up=True)
        log.info("MQTT connected", host=self.config.host, port=self.config.port)
        # Not a TaskGroup: on 3.11 a TaskGroup whose child fails while its owner is being
        # cancelled raises the child's error instead of the CancelledError (errors have
        # priority), and the reconnect loop would swallow the shutdown.
        tasks = [
            asyncio.create_task(self._receive(client), name="treadctl.mqtt.receive"),
            asyncio.create_task(self._send_outbox(client), name="treadctl.mqtt.outbox"),
            asyncio.create_task(self._send_state(client), name="treadctl.mqtt.state"),
            asyncio.create_task(self._send_telemetry(client), name="treadctl.mqtt.telemetry"),
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
        self._client = None
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(GOODBYE_S):
                await client.publish(self.topics.availability, b"offline", qos=1, retain=True)

    def _report_broker(self, *, up: bool) -> None:
        if self._broker_up is up:
            return
        self._broker_up = up
        # The supervisor decides what a lost broker means (safety.broker_loss_s); a safety
        # input, applied at once and never refused.
        self.controller.broker_state(connected=up)

    # --- inbound ---------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._dispatch(client, message)

    def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Never awaits: a slow command cannot hold up the next message."""
        topic = message.topic.value
        payload = _as_bytes(message.payload)
        if (name := self.topics.command_name(topic)) is not None:
            if message.retain:
                # A retained command would run again at every reconnect: never act on one.
                self._warn(
                    "retained",
                    "retained command ignored; publish commands without retain",
                    topic=topic,
                )
                return
            self._command(name, payload, message.properties)
        elif topic == self.topics.heart_rate:
            self._heart_rate(payload)
        elif topic == self.topics.ha_status and payload.strip() == b"online":
            self._spawn(self._rediscover(client), "treadctl.mqtt.rediscover")

    def _on_estop_message(self, message: aiomqtt.Message) -> None:
        # Whatever the payload: stop first, read it afterwards.
        task = self.controller.emergency_stop_now(EStopCause.COMMAND, "MQTT cmd/estop")
        try:
            self._answer_estop_later(task, message)
        except Exception:  # raised in paho's socket callback it would drop the connection
            log.exception("e-stop response failed (the belt was stopped)")

    def _answer_estop_later(self, task: asyncio.Task[None], message: aiomqtt.Message) -> None:
        payload = _as_bytes(message.payload)
        request_id = requests.peek_id(payload)
        self._spawn(self._answer_estop(task, request_id, message.properties), "treadctl.mqtt.estop")

    async def _answer_estop(
        self, task: asyncio.Task[None], request_id: RequestId, props: Properties | None
    ) -> None:
        await asyncio.shield(task)
        self._respond("estop", request_id, Result.success("emergency stop: belt stopped"), props)

    def _command(self, name: str, payload: bytes, props: Properties | None) -> None:
        try:
            request = requests.parse_request(name, payload)
            command = self._to_command(name, request)
        except RequestError as exc:
            log.info("command refused", command=name, code=exc.code, reason=exc.message)
            self._respond(name, exc.id, Result.error(exc.code, exc.message), props)
            return
        if command is None:  # handled here (select)
            self._respond(name, request.id, Result.success(), props)
            return
        future = self.controller.submit(command)
        self._spawn(self._answer(name, request.id, future, props), f"treadctl.mqtt.{name}")

    def _to_command(self, name: str, request: Request) -> Command | None:
        match request:
            case requests.StartRequest(program=program, parameters=parameters):
                program = program or self.selected_program
                if program is None:
                    raise RequestError(
                        "invalid_field",
                        'no program given and none selected: send {"program": NAME}',
                        request.id,
                    )
                return cmd.Start(program, parameters)
            case requests.SetRequest(speed_kmh=speed, walk=walk, incline_pct=incline):
                keep_walk, keep_incline = self._manual_target()
                return cmd.ManualSet(
                    speed,
                    WalkDirection(walk) if walk is not None else keep_walk,
                    incline if incline is not None else keep_incline,
                )
            case requests.SelectRequest(program=program):
                if program not in self.programs():
                    raise RequestError(
                        "unknown_program", f"no program named {program!r}", request.id
                    )
                self.selected_program = program
                self._republish_state()
                return None
        simple: dict[str, Command] = {
            "stop": cmd.Stop(),
            "pause": cmd.Pause(),
            "resume": cmd.Resume(),
            "skip": cmd.Skip(),
            "reset": cmd.Reset(),
            "heartbeat": cmd.Heartbeat(),
        }
        return simple[name]

    def _manual_target(self) -> tuple[WalkDirection, float]:
        """What `set` keeps when a field is omitted: the running manual session's walk and
        incline; forward and flat otherwise."""
        snap = self._snapshot
        if snap is not None and snap.mode is Mode.RUNNING and snap.program == "manual":
            return snap.target.walk, snap.target.incline_pct
        return WalkDirection.FORWARD, 0.0

    async def _answer(
        self,
        name: str,
        request_id: RequestId,
        future: asyncio.Future[Result],
        props: Properties | None,
    ) -> None:
        result = await future
        self._respond(name, request_id, result, props)

    def _respond(
        self, name: str, request_id: RequestId, result: Result, props: Properties | None
    ) -> None:
        payload = requests.response_payload(
            request_id, ok=result.ok, code=result.code, message=result.message
        )
        self._queue(Outgoing(self.topics.response(name), payload))
        # MQTT 5 request/response: answer where the request asked, with its correlation data.
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        if isinstance(response_topic, str) and response_topic and "#" not in response_topic:
            out_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            correlation = getattr(props, "CorrelationData", None)
            if correlation is not None:
                out_props.CorrelationData = correlation
            self._queue(Outgoing(response_topic, payload, properties=out_props))

    def _heart_rate(self, payload: bytes) -> None:
        try:
            bpm = requests.parse_heart_rate(payload, self.config.heart_rate_field)
        except ValueError as exc:
            self._warn("heart_rate", "heart rate input ignored", reason=str(exc))
            return
        result = self.controller.heart_rate(bpm)
        if not result.ok:
            self._warn("heart_rate", "heart rate input refused", reason=result.message)

    # --- outbound --------------------------------------------------------------------------------

    def _on_controller(self, item: Snapshot | Event) -> None:
        if isinstance(item, Event):
            payload = json.dumps(item.as_dict(), default=str).encode()
            self._queue(Outgoing(self.topics.event, payload))
            return
        self._snapshot = item
        self._republish_state()

    def _republish_state(self) -> None:
        snap = self._snapshot
        if snap is None:
            return
        body = snap.state_dict() | {"selected_program": self.selected_program}
        payload = json.dumps(body).encode()
        if payload != self._state_payload:
            self._state_payload = payload
            self._state_ready.set()

    def _queue(self, item: Outgoing) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self._warn("outbox", "MQTT outbox full: dropping the oldest message")
        self._outbox.append(item)
        self._outbox_ready.set()

    async def _send_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            await self._outbox_ready.wait()
            while self._outbox:
                item = self._outbox[0]
                await client.publish(
                    item.topic,
                    item.payload,
                    qos=item.qos,
                    retain=item.retain,
                    properties=item.properties,
                )
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()
                checkpoint()  # the publish waited for its PUBACK with 3.11's wait_for
            # Cleared only once empty: what a lost connection left behind goes out after the
            # reconnect without waiting for something new.
            self._outbox_ready.clear()

    async def _send_state(self, client: aiomqtt.Client) -> None:
        while True:
            await self._state_ready.wait()
            self._state_ready.clear()
            if self._state_payload is not None:
                await checked(
                    client.publish(self.topics.state, self._state_payload, qos=1, retain=True)
                )

    async def _send_telemetry(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.telemetry_period
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a stalled loop): skip, do not burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)
            snap = self._snapshot
            if snap is not None:
                body = snap.telemetry_dict() | {"ts": round(self.wall(), 3)}
                payload = json.dumps(body).encode()
                await checked(client.publish(self.topics.telemetry, payload, qos=0))

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        payload = discovery_payload(
            self.topics,
            programs=list(self.programs()),
            max_speed_kmh=self.settings.limits.max_speed_forward_kmh,
            estop_inputs=[i.name for i in self.settings.estop_inputs],
            model=self.model,
            version=self.version,
        )
        await checked(client.publish(self.topics.discovery, payload, qos=1, retain=True))

    async def _rediscover(self, client: aiomqtt.Client) -> None:
        await asyncio.sleep(random.uniform(0, DISCOVERY_JITTER_S))  # noqa: S311 - not crypto
        await self._publish_discovery(client)
        if self._state_payload is not None:
            await checked(
                client.publish(self.topics.state, self._state_payload, qos=1, retain=True)
            )

    def publish_event(self, event: Event) -> None:
        """An event from outside the controller (e.g. a failed reload)."""
        self._on_controller(event)

    def programs_changed(self) -> None:
        """Send discovery again (the program list is in it), e.g. after a reload."""
        if self._client is not None and self.config.discovery:
            self._spawn(self._publish_discovery(self._client), "treadctl.mqtt.discovery")

    # --- helpers ---------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, aiomqtt.MqttError):
                return  # the connection loop reports and reconnects
            log.error("MQTT task failed", task=task.get_name(), error=repr(exc))

    def _warn(self, key: str, message: str, **fields: object) -> None:
        """Warn at most every WARN_EVERY_S per kind: a flood of junk must not flood the log."""
        now = time.monotonic()
        if now - self._warned.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[key] = now
            log.warning(message, **fields)
        else:
            log.debug(message, **fields)


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
