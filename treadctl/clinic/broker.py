"""The clinic service on the broker: it says it is there, takes in session records, acks them,
and sends commands to a treadmill's daemon on a therapist's behalf.

Topics (docs/mqtt.md, Session records for the clinic service):
- `{prefix}/clinic/availability`, retained `online`, last will `offline`: daemons send their
  undelivered records when it turns `online`.
- `{prefix}/+/record` in: a daemon's treadctl-session document; stored (idempotent by session
  id), then acked on `{prefix}/{device}/record/ack` with `{"session": id}`. A malformed record
  is logged and not acked; a record the database could not take is not acked either, so the
  daemon sends it again.
- `{prefix}/{device}/cmd/{name}` out and `{prefix}/+/response/+` in, matched by request id;
  `cmd/estop` is published without waiting for any answer (`estop`).
- `{prefix}/+/availability|state|telemetry|event` in (QoS as the daemons publish them): the
  live overview's tiles (fleet.py), passed on to the listeners; a malformed one is ignored
  with a throttled warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import aiomqtt
import structlog

from treadctl.clinic.errors import ClinicError
from treadctl.clinic.fleet import Fleet, PayloadError, Tile
from treadctl.config.models import MqttConfig
from treadctl.mqtt.backoff import Backoff
from treadctl.mqtt.connection import credentials, new_client, tls_context
from treadctl.mqtt.throttle import LogThrottle

log = structlog.get_logger("treadctl.clinic.broker")

ONLINE, OFFLINE = b"online", b"offline"
GOODBYE_S = 1.0  # time allowed to publish `offline` on shutdown
ESTOP_SEND_S = 2.0  # the broker's PUBACK for an e-stop; beyond it, say it may not have gone
CHECK_EVERY_S = 0.5  # tiles turn stale within this of STALE_S
NO_BROKER = (
    "the emergency stop was NOT sent: the clinic service has no broker connection; "
    "use the treadmill's own stop"
)
LIVE = {"availability": 1, "state": 1, "telemetry": 0, "event": 1}  # as the daemons publish
# The store callback: (device, document) -> the session id stored; raises ClinicError when the
# record is malformed (never acked), anything else when the database failed (acked later).
StoreRecord = Callable[[str, bytes], Awaitable[str]]


class NoAnswerError(ClinicError):
    """The daemon did not answer (not running, or the broker is down)."""


class NotConnectedError(ClinicError):
    """The clinic service has no broker connection: nothing was sent."""


class BrokerLink:
    def __init__(
        self, config: MqttConfig, store: StoreRecord, *, identifier: str | None = None
    ) -> None:
        self.config = config
        self.prefix = config.prefix.rstrip("/")
        self.availability = f"{self.prefix}/clinic/availability"
        self._store = store
        self._records: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._identifier = identifier or f"treadctl-clinic-{secrets.token_hex(4)}"
        self._client: aiomqtt.Client | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connected = asyncio.Event()
        self.records_stored = 0
        self.records_rejected = 0
        self.fleet = Fleet()
        self.clock: Callable[[], float] = time.time
        self._listeners: list[Callable[[Tile], None]] = []
        self._junk = LogThrottle(log)

    def watch(self, listener: Callable[[Tile], None]) -> None:
        """`listener` is called (in the event loop, must not block) with every changed tile."""
        self._listeners.append(listener)

    def _changed(self, tile: Tile) -> None:
        for listener in self._listeners:
            listener(tile)

    async def check_staleness(self) -> NoReturn:
        """Tiles whose daemon went quiet turn stale, whether or not the broker is there."""
        while True:
            for tile in self.fleet.check(self.clock()):
                self._changed(tile)
            await asyncio.sleep(CHECK_EVERY_S)

    async def run(self) -> NoReturn:
        """Connect, and reconnect with backoff, for as long as the service runs."""
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                log.warning("broker unreachable", error=str(exc))
            finally:
                self._client = None
                if self.connected.is_set():
                    backoff.reset()  # it was up: the next attempt starts short again
                self.connected.clear()
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(NoAnswerError("the connection to the broker ended"))
            await asyncio.sleep(backoff.next_delay())

    async def _session(self) -> None:
        creds = await asyncio.to_thread(credentials, self.config)
        tls = await asyncio.to_thread(tls_context, self.config)
        will = aiomqtt.Will(self.availability, OFFLINE, qos=1, retain=True)
        client = new_client(
            self.config, self._identifier, creds=creds, tls=tls, will=will, timeout_s=10.0
        )
        async with client:
            self._client = client
            live = [(f"{self.prefix}/+/{kind}", qos) for kind, qos in LIVE.items()]
            await client.subscribe(
                [(f"{self.prefix}/+/record", 1), (f"{self.prefix}/+/response/+", 1), *live]
            )
            await client.publish(self.availability, ONLINE, qos=1, retain=True)
            self.connected.set()
            log.info("connected to the broker", broker=f"{self.config.host}:{self.config.port}")
            # Records waiting from an earlier connection cannot be acked on this one: the
            # daemons send them again.
            self._records = asyncio.Queue()  # unbounded: what aiomqtt's own queue would hold
            storing = asyncio.create_task(
                self._store_records(client), name="treadctl.clinic.records"
            )
            try:
                async for message in client.messages:
                    self._handle(message)
            except asyncio.CancelledError:
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(GOODBYE_S):
                        await client.publish(self.availability, OFFLINE, qos=1, retain=True)
                raise
            finally:
                storing.cancel()  # a record being stored finishes in its thread, unacked
                await asyncio.wait([storing], timeout=GOODBYE_S)

    def _handle(self, message: aiomqtt.Message) -> None:
        parts = message.topic.value.split("/")
        if parts[-1] in LIVE and len(parts) == self.prefix.count("/") + 3:
            self._live(parts[-2], parts[-1], message)
            return
        device = parts[-2] if parts[-1] == "record" else parts[-3]
        raw = message.payload
        if parts[-1] == "record":
            # Parsed and stored by the records task, in arrival order: the live tiles and the
            # commands' answers on this loop never wait behind a record of several MB.
            if isinstance(raw, bytes | bytearray):
                self._records.put_nowait((device, bytes(raw)))
            return
        try:
            if not isinstance(raw, bytes | bytearray):
                raise TypeError("not a JSON document")  # noqa: TRY301 - reported just below
            data = json.loads(raw)
        except (TypeError, ValueError) as exc:
            log.warning("not JSON; ignored", topic=message.topic.value, error=str(exc))
            return
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            future = self._waiting.get(data["id"])
            if future is not None and not future.done():
                future.set_result(data)

    def _live(self, device: str, kind: str, message: aiomqtt.Message) -> None:
        raw = message.payload  # always bytes from the broker; the type allows more
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else b""
        try:
            tile = self.fleet.apply(device, kind, payload, self.clock(), retained=message.retain)
        except PayloadError as exc:
            self._junk.warn(kind, "daemon message ignored", device=device, error=str(exc))
            return
        if tile is not None:
            self._changed(tile)

    async def _store_records(self, client: aiomqtt.Client) -> NoReturn:
        while True:
            device, payload = await self._records.get()
            await self._record(client, device, payload)

    async def _record(self, client: aiomqtt.Client, device: str, payload: bytes) -> None:
        try:
            session_id = await self._store(device, payload)
        except ClinicError as exc:
            self.records_rejected += 1
            log.warning("session record refused; not acked", device=device, error=str(exc))
            return
        except Exception:  # the database's trouble: the daemon sends it again later
            log.exception("session record not stored; not acked", device=device)
            return
        self.records_stored += 1
        ack = json.dumps({"session": session_id}).encode()
        await client.publish(f"{self.prefix}/{device}/record/ack", ack, qos=1)

    async def estop(self, device: str) -> None:
        """Publish `cmd/estop` at once and return when the broker has it (PUBACK). Nothing is
        awaited before the publish: the daemon's answer comes on `response/estop` and the state."""
        client = self._client
        if client is None:
            raise NotConnectedError(NO_BROKER)
        payload = json.dumps({"id": f"clinic-estop-{secrets.token_hex(6)}"}).encode()
        try:
            async with asyncio.timeout(ESTOP_SEND_S):
                await client.publish(f"{self.prefix}/{device}/cmd/estop", payload, qos=1)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            raise NotConnectedError(
                f"the emergency stop may NOT have been sent (the broker: {exc or 'no answer'}); "
                "use the treadmill's own stop"
            ) from exc

    async def command(
        self, device: str, name: str, body: dict[str, Any], *, timeout_s: float = 5.0
    ) -> dict[str, Any]:
        """Send `cmd/{name}` to a daemon and return its response (`ok`, `error`)."""
        client = self._client
        if client is None:
            raise NoAnswerError("the clinic service is not connected to the broker")
        request_id = f"clinic-{secrets.token_hex(6)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        payload = json.dumps({"id": request_id, **body}).encode()
        try:
            await client.publish(f"{self.prefix}/{device}/cmd/{name}", payload, qos=1)
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            raise NoAnswerError(
                f"treadmill {device!r} did not answer {name} within {timeout_s:g} s "
                "(is its daemon running?)"
            ) from None
        except aiomqtt.MqttError as exc:
            raise NoAnswerError(f"the broker: {exc}") from exc
        finally:
            self._waiting.pop(request_id, None)
