"""The treadmills over HTTP: the live overview (`GET /api/treadmills`, and `GET /api/live`, its
server push) and the commands a therapist sends from it (e-stop, reset, pause, resume, skip,
stop). The start, which needs the clinic's records, is in api.py.

Server push (Server-Sent Events): a `snapshot` of every tile on connect, then a `tile` event per
change, at most MAX_RATE_HZ a device, and a comment every KEEPALIVE_S.

Each client holds at most one pending tile a device (the latest): a slow client loses the
intermediate updates of a device, never its latest, and a client's memory is bounded by the
number of treadmills. The broker link calls `publish` from the event loop and never waits on
a client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from treadctl.extras import CLINIC, MissingExtraError

try:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
except ModuleNotFoundError as exc:  # the daemon's install has no web framework
    raise MissingExtraError(CLINIC, "the clinic service's web API", exc.name) from exc

from treadctl.clinic.broker import NO_BROKER, BrokerLink, NotConnectedError
from treadctl.clinic.errors import ConflictError, FormError, NotFoundError
from treadctl.clinic.fleet import Tile

# A little above the daemons' 10 Hz: a burst after a stall of the service drains (at exactly
# 10 Hz the burst's delay stayed for good, 54 ms a sample: the fleet bench, SIGSTOP for 250 ms).
MAX_RATE_HZ = 12.5
KEEPALIVE_S = 15.0
KEEPALIVE = ": keep-alive\n\n"  # an SSE comment: no event on the page
# Nothing in between may hold the stream back (nginx buffers a response unless told not to).
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
MAX_CLIENTS = 64  # a page each: a handful of tablets and desk screens, with room to spare
# Relayed as they are (docs/mqtt.md, Commands); `reset` is checked against the tile first.
RELAYED = frozenset({"pause", "resume", "skip", "stop", "reset"})


class TooManyClientsError(Exception):
    pass


class _Client:
    def __init__(self) -> None:
        self.pending: dict[str, Tile] = {}
        self.due_at: dict[str, float] = {}  # a device's next update is on time from here
        self.wake = asyncio.Event()


class LiveHub:
    def __init__(
        self,
        tiles: Callable[[], list[Tile]],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_rate_hz: float = MAX_RATE_HZ,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._tiles = tiles
        self._clock = clock
        self._gap_s = 1.0 / max_rate_hz
        self._keepalive_s = keepalive_s
        self._clients: set[_Client] = set()
        self._closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def _allowed_at(self, client: _Client, device: str, now: float) -> float:
        return client.due_at.get(device, now) - self._gap_s

    def publish(self, tile: Tile) -> None:
        for client in self._clients:
            client.pending[tile.device] = tile  # replaces an update the client has not had yet
            client.wake.set()

    def close(self) -> None:
        """End every stream (the service is stopping)."""
        self._closed = True
        for client in self._clients:
            client.wake.set()

    def stream(self) -> AsyncIterator[str]:
        """The stream of one client, as text/event-stream, until it goes or the hub closes."""
        if len(self._clients) >= MAX_CLIENTS:
            raise TooManyClientsError(f"{MAX_CLIENTS} live pages are open already")
        client = _Client()
        self._clients.add(client)  # before the snapshot: no change between them is lost
        return self._events(client)

    async def _events(self, client: _Client) -> AsyncIterator[str]:
        try:
            tiles = [t.as_dict() for t in self._tiles()]
            yield _event("snapshot", {"treadmills": tiles})
            while not self._closed:
                try:
                    async with asyncio.timeout(self._keepalive_s):
                        await client.wake.wait()
                except TimeoutError:
                    yield KEEPALIVE  # proxies and browsers keep a quiet stream open
                    continue
                client.wake.clear()
                while client.pending and not self._closed:
                    now = self._clock()
                    due = [d for d in client.pending if now >= self._allowed_at(client, d, now)]
                    for device in due:
                        tile = client.pending.pop(device)
                        # GCRA: on average one a gap, and one gap of slack, so that a daemon's
                        # 10 Hz with jitter passes at once instead of waiting out every gap
                        due_at = client.due_at.get(device, now)
                        client.due_at[device] = max(due_at, now) + self._gap_s
                        yield _event("tile", tile.as_dict())
                    if client.pending:  # too soon for these: wait for the earliest
                        soonest = min(self._allowed_at(client, d, now) for d in client.pending)
                        await asyncio.sleep(max(soonest - now, 0.0))
        finally:  # also when the client went: Starlette cancels the stream
            self._clients.discard(client)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class TreadmillRoutes:
    """The handlers; errors are raised as ClinicError and translated by api.py."""

    def __init__(self, broker: BrokerLink | None) -> None:
        self.broker = broker
        self.hub = LiveHub(broker.fleet.tiles if broker is not None else list)
        if broker is not None:
            broker.watch(self.hub.publish)

    async def overview(self, _request: Request) -> Response:
        tiles = self.broker.fleet.tiles() if self.broker is not None else []
        return JSONResponse({"treadmills": [tile.as_dict() for tile in tiles]})

    async def live(self, _request: Request) -> Response:
        try:
            events = self.hub.stream()
        except TooManyClientsError as exc:
            return JSONResponse({"error": {"code": "busy", "message": str(exc)}}, 503)

        return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)

    async def estop(self, request: Request) -> Response:
        """Sent at once, to any device id (one the service has not heard from may exist): no
        body read, no database, no answer awaited; 202 once the broker has it."""
        device = _device(request)
        if self.broker is None:
            raise NotConnectedError(NO_BROKER)
        await self.broker.estop(device)
        return JSONResponse({"sent": True}, 202)

    async def command(self, request: Request) -> Response:
        """Relayed to a treadmill the service has heard from; the daemon's response is
        returned as it is (502 when it refused: its `error` has `code` and `message`)."""
        device, name = _device(request), request.path_params["command"]
        if name not in RELAYED:
            raise NotFoundError(f"{name!r}: one of start, estop, {', '.join(sorted(RELAYED))}")
        broker = self.broker
        tile = broker.fleet.get(device) if broker is not None else None
        if broker is None or tile is None:
            raise NotFoundError(f"treadmill {device!r}: not heard of on the broker")
        if name == "reset" and not (tile.estop_latched and tile.speed_kmh == 0 and not tile.stale):
            raise ConflictError(_why_no_reset(tile))
        answer = await broker.command(device, name, {})
        return JSONResponse(answer, 200 if answer.get("ok") else 502)


def _why_no_reset(tile: Tile) -> str:
    if not tile.estop_latched:
        return f"treadmill {tile.device!r}: no emergency stop is latched (mode {tile.mode})"
    if tile.stale:
        return f"treadmill {tile.device!r}: no fresh report that the belt is still"
    return f"treadmill {tile.device!r}: the belt still moves ({tile.speed_kmh} km/h)"


def _device(request: Request) -> str:
    device: str = request.path_params["device"]
    if not device or any(c in device for c in "+#/\x00"):
        raise FormError(f"device: {device!r} is not a device id")
    return device
