"""The MQTT bridge: commands in, responses, state, telemetry and events out (docs/mqtt.md).

It composes the connection loop (connection_loop.py: connect, announce, reconnect, goodbye),
command decoding (commands.py, requests.py), the outbox (outbox.py) and, given one, the sender of
session records to the clinic service (records.py), and talks to the controller only through
ControllerPort (port.py). A message on `…/cmd/estop` never waits: paho hands it over from its
socket read (connection_loop.py), before any message queue, and the stop is on the serial port
before the next MQTT packet is read.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import aiomqtt
import structlog
from paho.mqtt.properties import Properties

from treadctl.config.models import Settings
from treadctl.core.commands import Result
from treadctl.core.safety import EStopCause
from treadctl.core.state import Event, Snapshot
from treadctl.mqtt import requests
from treadctl.mqtt.backoff import Backoff
from treadctl.mqtt.commands import CommandDecoder, answers, as_bytes
from treadctl.mqtt.connection_loop import TASKS_END_S, ConnectionLoop
from treadctl.mqtt.discovery import discovery_payload
from treadctl.mqtt.outbox import Outbox
from treadctl.mqtt.port import ControllerPort
from treadctl.mqtt.records import RecordShipper
from treadctl.mqtt.requests import RequestError, RequestId
from treadctl.mqtt.throttle import LogThrottle
from treadctl.mqtt.topics import Topics
from treadctl.tasks import cancel_and_wait, checked

log = structlog.get_logger(__name__)

DISCOVERY_JITTER_S = 1.0  # Home Assistant asks for a random delay after its birth message


class MqttBridge:
    """Connects one controller to the broker. Run `run()` as a task; cancel it to stop."""

    def __init__(
        self,
        settings: Settings,
        controller: ControllerPort,
        *,
        programs: Sequence[str],
        model: str,
        version: str,
        backoff: Backoff | None = None,
        wall: Callable[[], float] = time.time,
        records: RecordShipper | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.mqtt
        self.topics = Topics.from_settings(settings)
        self.controller = controller
        self.model = model
        self.version = version
        self._throttle = LogThrottle(log)
        self._commands = CommandDecoder(programs)
        self._outbox = Outbox(
            self.topics,
            telemetry_rate_hz=settings.telemetry.rate_hz,
            wall=wall,
            throttle=self._throttle,
        )
        self._link = ConnectionLoop(
            self.config,
            self.topics,
            backoff=backoff or Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s),
            on_estop=self._on_estop_message,
            online=self._online,
            workers=self._workers,
            broker_state=controller.broker_state,
            throttle=self._throttle,
        )
        self._records = records  # ended sessions for the clinic service (records.py)
        self._tasks: set[asyncio.Task[Any]] = set()
        controller.add_listener(self._on_controller)

    @property
    def connected(self) -> asyncio.Event:
        """Set while connected to the broker."""
        return self._link.connected

    @property
    def connections(self) -> int:
        """Successful connects so far (tests and status)."""
        return self._link.connections

    @property
    def selected_program(self) -> str | None:
        """The program chosen with `select`, started by a `start` without one."""
        return self._commands.selected_program

    async def run(self) -> NoReturn:
        """Connect, serve, reconnect, until cancelled. Run it as a task of its own: it checks
        that task's pending cancel requests (treadctl/tasks.py)."""
        try:
            await self._link.run()
        finally:
            await cancel_and_wait(list(self._tasks), timeout_s=TASKS_END_S, what="MQTT tasks")

    # --- what the owner changes (a reload) -------------------------------------------------------

    def set_programs(self, names: Sequence[str]) -> None:
        """The programs `select` accepts and discovery lists; discovery is sent again."""
        self._commands.programs = tuple(names)
        client = self._link.client
        if client is not None and self.config.discovery:
            self._spawn(self._publish_discovery(client), "treadctl.mqtt.discovery")

    def set_telemetry_rate(self, rate_hz: float) -> None:
        self._outbox.set_telemetry_rate(rate_hz)

    def publish_event(self, event: Event) -> None:
        """An event from outside the controller (e.g. a failed reload)."""
        self._outbox.event(event)

    # --- one connection --------------------------------------------------------------------------

    async def _online(self, client: aiomqtt.Client) -> None:
        """After `online`: the clinic's topics, discovery and the current state."""
        if self._records is not None:
            await self._records.subscribe(client)
        if self.config.discovery:
            await self._publish_discovery(client)
        await self._outbox.announce_state(client)

    def _workers(self, client: aiomqtt.Client) -> dict[str, Coroutine[Any, Any, None]]:
        records = self._records.workers(client) if self._records is not None else {}
        return {
            "treadctl.mqtt.receive": self._receive(client),
            "treadctl.mqtt.outbox": self._outbox.send_queued(client),
            "treadctl.mqtt.state": self._outbox.send_state(client),
            "treadctl.mqtt.telemetry": self._outbox.send_telemetry(client),
        } | records

    # --- inbound ---------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._dispatch(client, message)

    def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Never awaits: a slow command cannot hold up the next message."""
        topic = message.topic.value
        payload = as_bytes(message.payload)
        if (name := self.topics.command_name(topic)) is not None:
            if message.retain:
                # A retained command would run again at every reconnect: never act on one.
                self._throttle.warn(
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
        elif self._records is not None and self._records.handles(topic):
            self._records.on_message(topic, payload)

    def _on_estop_message(self, payload: bytes, props: Properties | None) -> None:
        # Whatever the payload: stop first, read it afterwards.
        task = self.controller.emergency_stop_now(EStopCause.COMMAND, "MQTT cmd/estop")
        try:
            request_id = requests.peek_id(payload)
            self._spawn(self._answer_estop(task, request_id, props), "treadctl.mqtt.estop")
        except Exception:  # raised in paho's socket callback it would drop the connection
            log.exception("e-stop response failed (the belt was stopped)")

    async def _answer_estop(
        self, task: asyncio.Task[None], request_id: RequestId, props: Properties | None
    ) -> None:
        await asyncio.shield(task)
        self._respond("estop", request_id, Result.success("emergency stop: belt stopped"), props)

    def _command(self, name: str, payload: bytes, props: Properties | None) -> None:
        try:
            request, command = self._commands.decode(name, payload, self._outbox.snapshot)
        except RequestError as exc:
            log.info("command refused", command=name, code=exc.code, reason=exc.message)
            self._respond(name, exc.id, Result.error(exc.code, exc.message), props)
            return
        if command is None:  # done by the decoder (select): the state says what was chosen
            self._republish_state()
            self._respond(name, request.id, Result.success(), props)
            return
        future = self.controller.submit(command)
        self._spawn(self._answer(name, request.id, future, props), f"treadctl.mqtt.{name}")

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
        for item in answers(self.topics, name, request_id, result, props):
            self._outbox.queue(item)

    def _heart_rate(self, payload: bytes) -> None:
        try:
            bpm = requests.parse_heart_rate(payload, self.config.heart_rate_field)
        except ValueError as exc:
            self._throttle.warn("heart_rate", "heart rate input ignored", reason=str(exc))
            return
        result = self.controller.heart_rate(bpm)
        if not result.ok:
            self._throttle.warn("heart_rate", "heart rate input refused", reason=result.message)

    # --- outbound --------------------------------------------------------------------------------

    def _on_controller(self, item: Snapshot | Event) -> None:
        if isinstance(item, Event):
            self._outbox.event(item)
        else:
            self._outbox.state(item, self._commands.selected_program)

    def _republish_state(self) -> None:
        if (snap := self._outbox.snapshot) is not None:
            self._outbox.state(snap, self._commands.selected_program)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        payload = discovery_payload(
            self.topics,
            programs=list(self._commands.programs),
            max_speed_kmh=self.settings.limits.max_speed_forward_kmh,
            estop_inputs=[i.name for i in self.settings.estop_inputs],
            model=self.model,
            version=self.version,
        )
        await checked(client.publish(self.topics.discovery, payload, qos=1, retain=True))

    async def _rediscover(self, client: aiomqtt.Client) -> None:
        await asyncio.sleep(random.uniform(0, DISCOVERY_JITTER_S))  # noqa: S311 - not crypto
        await self._publish_discovery(client)
        await self._outbox.republish_state(client)

    # --- tasks spawned per message ---------------------------------------------------------------

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
