"""Ended sessions to the clinic service, none lost (docs/mqtt.md, "Session records for the
clinic service").

The daemon keeps every session in its own store; this sends each ended one the clinic service
has not acknowledged on `…/record` (QoS 1, oldest first, one at a time), and marks it delivered
when `…/record/ack` names it. It sends only while the clinic's retained availability says
`online`: when it learns so (after every connect, or a change), soon after a session ends, and
again every `resend_s` while some are sent but unacknowledged (lost acks, a clinic restarted).

Safety: nothing here is in the way of the belt. The e-stop is acted on as paho hands its message
over (connection_loop.py), commands are dispatched without waiting; the store is read and
written in worker threads (`RecordStore`, implemented by treadctl/store/delivery.py), and a
store failure is logged and retried, never allowed to end the connection.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import aiomqtt
import structlog

from treadctl.mqtt.throttle import LogThrottle
from treadctl.mqtt.topics import Topics
from treadctl.tasks import checked

log = structlog.get_logger(__name__)

RESEND_S = 60.0  # again, while some are sent but not acknowledged
FLUSH_WAIT_S = 5.0  # for the store to write a session's end before looking for it
PUBLISH_S = 60.0  # a record may be megabytes: the PUBACK gets longer than aiomqtt's 10 s
ACK_MAX_BYTES = 1024
ACKS_QUEUED = 1024  # acknowledgements waiting to be written; beyond it the oldest is dropped
SESSION_ID_MAX = 64


class RecordStore(Protocol):
    """The daemon's own records, as the sender needs them. Each call does its storage work off
    the event loop; any exception is storage trouble, logged, and tried again later."""

    async def undelivered(self) -> list[str]:
        """Ids of this device's ended sessions not acknowledged yet, oldest first."""
        ...

    async def document(self, session_id: str) -> bytes | None:
        """The record's payload; None for a session deleted meanwhile."""
        ...

    async def mark_delivered(self, session_id: str) -> str | None:
        """None when marked (now or before); otherwise why nothing changed."""
        ...


def parse_ack(payload: bytes) -> str:
    """The session id of `{"session": "<id>"}`; ValueError naming what is wrong."""
    if len(payload) > ACK_MAX_BYTES:
        raise ValueError(f"longer than {ACK_MAX_BYTES} bytes")
    try:
        body = json.loads(payload)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(body, dict):
        raise ValueError(  # noqa: TRY004 - one error for every bad payload, named
            'not a JSON object: expected {"session": "<session id>"}'
        )
    session = body.get("session")
    if not isinstance(session, str) or not 0 < len(session) <= SESSION_ID_MAX:
        raise ValueError(f"'session' must be a session id (a string of 1-{SESSION_ID_MAX})")
    return session


class RecordShipper:
    """Owned by the daemon (which keeps it across connections); the bridge calls `subscribe()`
    and runs `workers()` on each connection and hands over the messages it `handles()`."""

    def __init__(
        self,
        topics: Topics,
        store: RecordStore,
        *,
        flushed: Callable[[], Awaitable[None]],
        resend_s: float = RESEND_S,
    ) -> None:
        self.topics = topics
        self.store = store
        self._flushed = flushed
        self.resend_s = resend_s
        self._throttle = LogThrottle(log)
        self.clinic_online = False  # unknown counts as offline
        self.sent = 0  # records published so far (tests and status)
        self._wake = asyncio.Event()
        self._everything = False  # send all undelivered, also those sent before
        self._session_ended = False
        self._failed = False  # the store failed: look again at the next resend
        self._unacked: set[str] = set()  # sent, not acknowledged yet
        self._acks: collections.deque[str] = collections.deque(maxlen=ACKS_QUEUED)
        self._acks_ready = asyncio.Event()

    # --- from the daemon and the bridge (event loop, never waits) --------------------------------

    def session_ended(self) -> None:
        """A session ended: send it once the store has written its end."""
        self._session_ended = True
        self._wake.set()

    def handles(self, topic: str) -> bool:
        return topic in (self.topics.record_ack, self.topics.clinic_availability)

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.clinic_availability:
            self._clinic_status(payload)
            return
        try:
            session = parse_ack(payload)
        except ValueError as exc:
            self._throttle.warn(
                "record_ack",
                "record ack ignored",
                topic=topic,
                reason=str(exc),
                payload=payload[:80],
            )
            return
        self._acks.append(session)
        self._acks_ready.set()

    def _clinic_status(self, payload: bytes) -> None:
        online = payload.strip() == b"online"
        if not online and payload.strip() not in (b"offline", b""):
            self._throttle.warn(
                "clinic_status",
                "clinic availability neither online nor offline: taken as offline",
                payload=payload[:80],
            )
        if online:  # every `online` (a restarted clinic may have lost what it had not stored)
            log.info("clinic service online: sending the records it has not acknowledged")
            self._everything = True
            self._wake.set()
        elif self.clinic_online:
            log.info("clinic service offline: records wait")
        self.clinic_online = online

    # --- one connection ----------------------------------------------------------------------

    async def subscribe(self, client: aiomqtt.Client) -> None:
        """The clinic is unknown on a new connection until its retained availability arrives."""
        self.clinic_online = False
        await checked(client.subscribe(self.topics.record_ack, qos=1))
        await checked(client.subscribe(self.topics.clinic_availability, qos=1))

    def workers(self, client: aiomqtt.Client) -> dict[str, Coroutine[Any, Any, None]]:
        return {
            "treadctl.mqtt.records": self._send(client),
            "treadctl.mqtt.record_acks": self._mark_acks(),
        }

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            await self._next_reason()
            if not self.clinic_online:
                continue
            if self._session_ended:
                self._session_ended = False
                await self._wait_flushed()
            everything, self._everything = self._everything, False
            await self._send_undelivered(client, everything=everything)

    async def _next_reason(self) -> None:
        """Until woken, or for the resend while something is left to do."""
        due = self.resend_s if (self._unacked or self._failed) else None
        try:
            async with asyncio.timeout(due):
                await self._wake.wait()
        except TimeoutError:
            self._everything = True
        self._wake.clear()

    async def _wait_flushed(self) -> None:
        try:
            async with asyncio.timeout(FLUSH_WAIT_S):
                await self._flushed()
        except Exception as exc:  # noqa: BLE001 - storage trouble: the resend picks it up
            self._failed = True
            log.warning("session end not written yet; its record waits", error=repr(exc))

    async def _send_undelivered(self, client: aiomqtt.Client, *, everything: bool) -> None:
        """Oldest first; without `everything`, only those not sent on this run yet."""
        try:
            pending = await self.store.undelivered()
        except Exception as exc:  # noqa: BLE001 - any storage trouble: logged, tried again
            self._storage_trouble(exc)
            return
        self._failed = False
        for session_id in pending:
            if not everything and session_id in self._unacked:
                continue
            if not self.clinic_online:
                return
            try:
                payload = await self.store.document(session_id)
            except Exception as exc:  # noqa: BLE001
                self._storage_trouble(exc)
                continue
            if payload is None or not self.clinic_online:
                continue  # deleted meanwhile, or the clinic went away while it was read
            await checked(client.publish(self.topics.record, payload, qos=1, timeout=PUBLISH_S))
            self._unacked.add(session_id)
            self.sent += 1
            log.info("session record sent", session=session_id, bytes=len(payload))

    async def _mark_acks(self) -> None:
        while True:
            await self._acks_ready.wait()
            self._acks_ready.clear()
            while self._acks:
                session_id = self._acks[0]
                try:
                    problem = await self.store.mark_delivered(session_id)
                except Exception as exc:  # noqa: BLE001 - the resend brings another ack
                    problem = f"not marked delivered: {exc}"
                if self._acks and self._acks[0] == session_id:
                    self._acks.popleft()
                if problem is None:
                    self._unacked.discard(session_id)
                    log.info("session record delivered", session=session_id)
                else:
                    self._throttle.warn(
                        "record_ack_session",
                        "record ack ignored",
                        session=session_id,
                        reason=problem,
                    )

    def _storage_trouble(self, exc: Exception) -> None:
        self._failed = True
        self._throttle.warn("record_store", "session records cannot be read", error=str(exc))
