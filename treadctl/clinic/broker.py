"""The clinic service on the broker: it says it is there, takes in session records, acks them,
and sends commands to a treadmill's daemon on a therapist's behalf.

Topics (docs/mqtt.md, Session records for the clinic service):
- `{prefix}/clinic/availability`, retained `online`, last will `offline`: daemons send their
  undelivered records when it turns `online`.
- `{prefix}/+/record` in: a daemon's treadctl-session document; stored (idempotent by session
  id), then acked on `{prefix}/{device}/record/ack` with `{"session": id}`. A malformed record
  is logged and not acked; a record the database could not take is not acked either, so the
  daemon sends it again.
- `{prefix}/{device}/cmd/{name}` out and `{prefix}/+/response/+` in, matched by request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import aiomqtt
import structlog

from treadctl.clinic.errors import ClinicError
from treadctl.config.models import MqttConfig
from treadctl.mqtt.backoff import Backoff
from treadctl.mqtt.connection import credentials, new_client, tls_context

log = structlog.get_logger("treadctl.clinic.broker")

ONLINE, OFFLINE = b"online", b"offline"
GOODBYE_S = 1.0  # time allowed to publish `offline` on shutdown
# The store callback: (device, document) -> the session id stored; raises ClinicError when the
# record is malformed (never acked), anything else when the database failed (acked later).
StoreRecord = Callable[[str, Any], Awaitable[str]]


class NoAnswerError(ClinicError):
    """The daemon did not answer (not running, or the broker is down)."""


class BrokerLink:
    def __init__(
        self, config: MqttConfig, store: StoreRecord, *, identifier: str | None = None
    ) -> None:
        self.config = config
        self.prefix = config.prefix.rstrip("/")
        self.availability = f"{self.prefix}/clinic/availability"
        self._store = store
        self._identifier = identifier or f"treadctl-clinic-{secrets.token_hex(4)}"
        self._client: aiomqtt.Client | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connected = asyncio.Event()
        self.records_stored = 0
        self.records_rejected = 0

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
            await client.subscribe(
                [(f"{self.prefix}/+/record", 1), (f"{self.prefix}/+/response/+", 1)]
            )
            await client.publish(self.availability, ONLINE, qos=1, retain=True)
            self.connected.set()
            log.info("connected to the broker", broker=f"{self.config.host}:{self.config.port}")
            try:
                async for message in client.messages:
                    await self._handle(client, message)
            except asyncio.CancelledError:
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(GOODBYE_S):
                        await client.publish(self.availability, OFFLINE, qos=1, retain=True)
                raise

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        parts = message.topic.value.split("/")
        device = parts[-2] if parts[-1] == "record" else parts[-3]
        raw = message.payload
        try:
            if not isinstance(raw, bytes | bytearray):
                raise TypeError("not a JSON document")  # noqa: TRY301 - reported just below
            data = json.loads(raw)
        except (TypeError, ValueError) as exc:
            log.warning("not JSON; ignored", topic=message.topic.value, error=str(exc))
            return
        if parts[-1] == "record":
            await self._record(client, device, data)
        elif isinstance(data, dict) and isinstance(data.get("id"), str):
            future = self._waiting.get(data["id"])
            if future is not None and not future.done():
                future.set_result(data)

    async def _record(self, client: aiomqtt.Client, device: str, data: Any) -> None:
        try:
            session_id = await self._store(device, data)
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
