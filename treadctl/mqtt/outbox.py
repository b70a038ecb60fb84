"""What the bridge publishes, and how it keeps up with a slow broker.

Three streams, each coalesced its own way: responses and events queue in order (past
OUTBOX_SIZE the oldest is dropped, with a warning); the retained state is only ever the newest,
sent when it changed; telemetry goes out at a fixed rate from the newest snapshot and skips
rather than bursts after a stall. What a lost connection left queued goes out after the reconnect.

Telemetry rides on the controller's ticks: a sample is published in the tick that brings a
snapshot when one is due, straight through paho at QoS 0 (the packet is on the socket when the
call returns: socket_writes.py), so it costs no wake-up and no task of its own
(docs/performance.md, "CPU"). A timer sends it anyway when no tick came half a period after it
was due (a rate above the poll rate, a stalled tick). While the socket has not taken the last
sample, the next is skipped rather than queued behind it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties

from treadctl.core.sample_grid import SampleGrid
from treadctl.core.state import Event, Snapshot
from treadctl.mqtt.socket_writes import qos0_publisher
from treadctl.mqtt.throttle import LogThrottle
from treadctl.mqtt.topics import Topics
from treadctl.tasks import checked, checkpoint

OUTBOX_SIZE = 1024  # responses and events waiting for the broker


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    properties: Properties | None = None


class Outbox:
    def __init__(
        self,
        topics: Topics,
        *,
        telemetry_rate_hz: float,
        wall: Callable[[], float],
        throttle: LogThrottle,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: monotonic, the event loop's (the telemetry's grid and its timer)."""
        self.topics = topics
        self.wall = wall
        self.clock = clock
        self.throttle = throttle
        self.snapshot: Snapshot | None = None  # the newest, for telemetry and the state
        self._telemetry = SampleGrid(telemetry_rate_hz)
        self._queue: collections.deque[Outgoing] = collections.deque(maxlen=OUTBOX_SIZE)
        self._queue_ready = asyncio.Event()
        self._state_key: tuple[object, ...] | None = None
        self._state_body: dict[str, object] | None = None
        self._state_payload: bytes | None = None
        self._state_ready = asyncio.Event()
        # While a connection's telemetry sender runs: paho's publish, the last sample's receipt
        # (until the socket took it) and the timer that stands in for a missing tick.
        self._publish: Callable[[str, bytes], paho.MQTTMessageInfo] | None = None
        self._last_sample: paho.MQTTMessageInfo | None = None
        self._late: asyncio.TimerHandle | None = None

    def set_telemetry_rate(self, rate_hz: float) -> None:
        """Takes effect from the next sample."""
        self._telemetry.set_rate(rate_hz)

    def queue(self, item: Outgoing) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.throttle.warn("outbox", "MQTT outbox full: dropping the oldest message")
        self._queue.append(item)
        self._queue_ready.set()

    def event(self, event: Event) -> None:
        payload = json.dumps(event.as_dict(), default=str).encode()
        self.queue(Outgoing(self.topics.event, payload))

    def state(self, snap: Snapshot, selected_program: str | None) -> None:
        """The retained state from now on; sent only if it differs from the last one."""
        self.snapshot = snap
        key = (snap.state_key(), selected_program)
        if key != self._state_key:  # most ticks change nothing: no payload built
            self._state_key = key
            body = snap.state_dict() | {"selected_program": selected_program}
            if body != self._state_body:  # rounded, the same payload: not sent again
                self._state_body = body
                self._state_payload = json.dumps(body).encode()
                self._state_ready.set()
        if self._publish is not None and self._telemetry.is_due(self.clock()):
            self._send_sample()

    # --- sending, on one connection ----------------------------------------------------------

    async def announce_state(self, client: aiomqtt.Client) -> None:
        """The state a new connection owes; nothing left pending for send_state."""
        if self._state_payload is not None:
            self._state_ready.clear()
            await self._publish_state(client, self._state_payload)

    async def republish_state(self, client: aiomqtt.Client) -> None:
        if self._state_payload is not None:
            await self._publish_state(client, self._state_payload)

    async def _publish_state(self, client: aiomqtt.Client, payload: bytes) -> None:
        await checked(client.publish(self.topics.state, payload, qos=1, retain=True))

    async def send_queued(self, client: aiomqtt.Client) -> None:
        while True:
            await self._queue_ready.wait()
            while self._queue:
                item = self._queue[0]
                await client.publish(
                    item.topic,
                    item.payload,
                    qos=item.qos,
                    retain=item.retain,
                    properties=item.properties,
                )
                if self._queue and self._queue[0] is item:
                    self._queue.popleft()
                checkpoint()  # the publish waited for its PUBACK with 3.11's wait_for
            # Cleared only once empty: what a lost connection left behind goes out after the
            # reconnect without waiting for something new.
            self._queue_ready.clear()

    async def send_state(self, client: aiomqtt.Client) -> None:
        while True:
            await self._state_ready.wait()
            self._state_ready.clear()
            if self._state_payload is not None:
                await self._publish_state(client, self._state_payload)

    async def send_telemetry(self, client: aiomqtt.Client) -> None:
        """Runs as long as the connection: the ticks and the timer publish meanwhile."""
        self._last_sample = None  # a sample left in paho's queue by the last connection is gone
        self._publish = qos0_publisher(client)
        self._arm_late()
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._publish = None
            if self._late is not None:
                self._late.cancel()
                self._late = None

    def _send_sample(self) -> None:
        """From a tick (a sample is due) or from the timer (none came in time)."""
        if self._telemetry.take(self.clock()) and not self._socket_behind():
            snap, publish = self.snapshot, self._publish
            if snap is not None and publish is not None:
                body = snap.telemetry_dict() | {"ts": round(self.wall(), 3)}
                try:
                    self._last_sample = publish(self.topics.telemetry, json.dumps(body).encode())
                except ValueError as exc:  # paho's refusal of a packet: nothing was queued
                    self.throttle.warn("telemetry", "telemetry not sent", error=str(exc))
        self._arm_late()

    def _socket_behind(self) -> bool:
        """The last sample is still queued in paho: the socket took nothing since."""
        last = self._last_sample
        return last is not None and last.rc == paho.MQTT_ERR_SUCCESS and not last.is_published()

    def _arm_late(self) -> None:
        """The next sample is sent half a period after it is due if no tick sent it by then."""
        if self._late is not None:
            self._late.cancel()
        grid = self._telemetry
        late_s = max(0.0, grid.due - self.clock()) + grid.period_s / 2
        self._late = asyncio.get_running_loop().call_later(late_s, self._send_sample)
