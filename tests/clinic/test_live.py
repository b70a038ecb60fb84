"""The live overview and the dashboard's e-stop, on real parts: the clinic service on a real
broker and SQLite, a daemon (in process on a pty with the simulated treadmill, or `treadctl
run` as a subprocess), and the Server-Sent Events stream read over a plain TCP connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from waiting import until

from clinic.service_rig import RunningClinic, clinic_settings, running_clinic
from mqtt.brokers import Broker
from mqtt.harness import Bridged, bridged, end_bridge, protocol
from mqtt.processes import simulator, start_daemon
from treadctl.clinic.fleet import STALE_S, Tile
from treadctl.clinic.live import LiveHub
from treadctl.config import Settings
from treadctl.core.commands import ManualSet
from treadctl.core.device import WalkDirection
from treadctl.drivers.trackmaster_codec import Op


@dataclass
class Stream:
    """One client of `GET /api/live`: every event with the time it arrived."""

    events: list[tuple[float, str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def tiles(self, device: str, since: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
        return [
            (at, data)
            for at, name, data in self.events
            if name == "tile" and data["device"] == device and at >= since
        ]

    def latest(self, device: str) -> dict[str, Any] | None:
        found = self.tiles(device)
        return found[-1][1] if found else None

    async def read(self, reader: asyncio.StreamReader) -> None:
        status = await reader.readline()
        assert b" 200 " in status, status
        while (line := await reader.readline()) not in {b"\r\n", b""}:
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()
        assert self.headers.get("transfer-encoding") == "chunked"
        buffer = ""
        while size := int((await reader.readline()).strip(), 16):
            buffer += (await reader.readexactly(size + 2))[:-2].decode().replace("\r\n", "\n")
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                self.take(block)

    def take(self, block: str) -> None:
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            self.events.append((time.monotonic(), name, json.loads("\n".join(data))))


@contextlib.asynccontextmanager
async def live_stream(clinic: RunningClinic) -> AsyncIterator[Stream]:
    port = clinic.service.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Cookie: {clinic.http.cookie()}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    stream = Stream()
    task = asyncio.create_task(stream.read(reader), name="test.sse")
    try:
        await until(lambda: bool(stream.events) or task.done(), timeout=5, what="the snapshot")
        if task.done():
            task.result()
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Timed:
    """A plain subscriber to one device's topics: (time, topic kind, payload) as they arrive."""

    seen: list[tuple[float, str, bytes]] = field(default_factory=list)

    def times(self, kind: str) -> list[tuple[float, bytes]]:
        return [(at, p) for at, k, p in self.seen if k == kind]


@contextlib.asynccontextmanager
async def timed(broker: Broker, base: str) -> AsyncIterator[Timed]:
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=protocol(broker), identifier=f"t-{secrets.token_hex(3)}"
    ) as client:
        await client.subscribe([(f"{base}/telemetry", 0), (f"{base}/availability", 1)])
        found = Timed()

        async def collect() -> None:
            async for message in client.messages:
                raw = message.payload
                assert isinstance(raw, bytes)
                found.seen.append((time.monotonic(), message.topic.value.split("/")[-1], raw))

        task = asyncio.create_task(collect(), name="test.timed")
        try:
            yield found
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@contextlib.asynccontextmanager
async def clinic_and_daemon(
    broker: Broker, tmp_path: Path
) -> AsyncIterator[tuple[RunningClinic, Bridged]]:
    prefix = f"t{secrets.token_hex(3)}"
    settings = clinic_settings(broker, f"sqlite:///{tmp_path}/clinic.db", prefix)
    async with (
        running_clinic(settings) as clinic,
        bridged(broker, mqtt={"prefix": prefix}) as b,
    ):
        yield clinic, b


def device_of(b: Bridged) -> str:
    return b.settings.device.id


async def test_the_stream_sends_a_snapshot_then_each_tile_within_a_second(
    broker: Broker, tmp_path: Path
) -> None:
    async with (
        clinic_and_daemon(broker, tmp_path) as (clinic, b),
        timed(broker, b.topics.base) as watch,
    ):
        device = device_of(b)
        await until(
            lambda: any(t["device"] == device for t in _tiles(clinic)),
            what="the daemon discovered",
        )
        status, body = await clinic.http.call("GET", "/api/treadmills")
        assert status == 200
        assert [t for t in body["treadmills"] if t["device"] == device] == [
            t for t in _tiles(clinic) if t["device"] == device
        ]
        async with live_stream(clinic) as stream:
            _, first, snapshot = stream.events[0]
            assert first == "snapshot"
            assert stream.headers["content-type"].startswith("text/event-stream")
            mine = [t for t in snapshot["treadmills"] if t["device"] == device]
            assert len(mine) == 1
            assert mine[0]["online"] is True
            assert mine[0]["mode"] == "idle"

            assert (await b.user.request("set", {"speed_kmh": 1.5, "walk": "backward"}))["ok"]
            await until(
                lambda: (
                    (stream.latest(device) or {}).get("speed_kmh", 0) > 1.3
                    and any(v > 1.3 for _, v in _speeds(watch))
                ),
                timeout=15,
                what="the tile and the telemetry at speed",
            )
            # the tile shows each speed the telemetry reached within a second of it
            telemetry = _speeds(watch)
            for threshold in (0.3, 0.8, 1.3):
                said = next(t for t, v in telemetry if v > threshold)
                shown = next(at for at, t in stream.tiles(device) if t["speed_kmh"] > threshold)
                assert shown - said < 1.0, (threshold, shown - said)
            moving = stream.latest(device)
            assert moving is not None
            assert moving["mode"] == "running"
            assert (moving["walk"], moving["belt"]) == ("backward", "reverse")
            assert moving["stale"] is False
            assert moving["online"] is True
            assert (await b.user.request("stop"))["ok"]
            await until(lambda: _mode(stream, device) == "idle", timeout=15, what="idle")


def _tiles(clinic: RunningClinic) -> list[dict[str, Any]]:
    broker = clinic.service.broker
    assert broker is not None
    return [t.as_dict() for t in broker.fleet.tiles()]


def _speeds(watch: Timed) -> list[tuple[float, float]]:
    return [(t, float(json.loads(raw)["speed_kmh"])) for t, raw in watch.times("telemetry")]


def _mode(stream: Stream, device: str) -> str | None:
    tile = stream.latest(device)
    return None if tile is None else tile["mode"]


async def test_a_daemon_that_says_goodbye_is_offline_and_stale_at_once(
    broker: Broker, tmp_path: Path
) -> None:
    async with (
        clinic_and_daemon(broker, tmp_path) as (clinic, b),
        timed(broker, b.topics.base) as watch,
    ):
        device = device_of(b)
        await until(lambda: _live_now(clinic, device), what="the tile live")
        async with live_stream(clinic) as stream:
            await end_bridge(b.task)
            await until(
                lambda: any(p == b"offline" for _, p in watch.times("availability")),
                what="the daemon's offline",
            )
            offline_at = next(t for t, p in watch.times("availability") if p == b"offline")
            await until(
                lambda: any(not t["online"] for _, t in stream.tiles(device)), what="tile offline"
            )
            at, tile = next((at, t) for at, t in stream.tiles(device) if t["online"] is False)
            assert tile["stale"] is True
            assert at - offline_at < 0.5
            status, body = await clinic.http.call("GET", "/api/treadmills")
            assert status == 200
            mine = next(t for t in body["treadmills"] if t["device"] == device)
            assert (mine["online"], mine["stale"]) == (False, True)


async def test_a_killed_daemon_turns_stale_then_offline_by_its_last_will(
    broker: Broker, tmp_path: Path
) -> None:
    prefix, device = f"t{secrets.token_hex(3)}", f"tm{secrets.token_hex(3)}"
    settings = clinic_settings(broker, f"sqlite:///{tmp_path}/clinic.db", prefix)
    link, config = tmp_path / "treadmill", tmp_path / "treadctl.toml"
    config.write_text(
        f'log_level = "WARNING"\n[device]\nid = "{device}"\ndriver = "woodway"\nport = "{link}"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        f'prefix = "{prefix}"\nkeepalive_s = 5\n[telemetry]\nrate_hz = 10\n'
    )
    async with (
        running_clinic(settings) as clinic,
        simulator(link),
        timed(broker, f"{prefix}/{device}") as watch,
        live_stream(clinic) as stream,
    ):
        daemon = await start_daemon(config)
        try:
            await until(
                lambda: any(t["online"] and not t["stale"] for _, t in stream.tiles(device)),
                timeout=20,
                what="the daemon's tile live",
            )
            daemon.kill()
            killed = time.monotonic()
            await daemon.wait()
            await until(
                lambda: any(t["stale"] for _, t in stream.tiles(device, since=killed)),
                timeout=STALE_S + 2,
                what="the tile stale without telemetry",
            )
            await until(
                lambda: any(p == b"offline" for _, p in watch.times("availability")),
                timeout=15,
                what="the broker's last will",
            )
            will_at = next(t for t, p in watch.times("availability") if p == b"offline")
            await until(
                lambda: any(t["online"] is False for _, t in stream.tiles(device)),
                what="the tile offline",
            )
            at = next(at for at, t in stream.tiles(device) if t["online"] is False)
            assert at - will_at < 0.5
            assert all(t["stale"] for _, t in stream.tiles(device, since=killed + 0.01))
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()


async def test_junk_on_a_daemons_topics_is_ignored_and_the_tile_goes_on(
    broker: Broker, tmp_path: Path
) -> None:
    async with clinic_and_daemon(broker, tmp_path) as (clinic, b):
        device = device_of(b)
        await until(lambda: _mode_of(clinic, device) == "idle", what="the tile")
        before = len(_tiles(clinic))
        junk = [
            ("state", b"\xff not json"),
            ("state", b'{"mode": "flying"}'),
            ("telemetry", b'{"speed_kmh": "fast"}'),
            ("telemetry", b"[" * 50_000),
            ("event", b"42"),
        ]
        for kind, payload in junk:
            await b.user.client.publish(f"{b.topics.base}/{kind}", payload, qos=1)
        await b.user.client.publish(f"{clinic.prefix}/x{device}/availability", b"maybe", qos=1)
        assert (await b.user.request("set", {"speed_kmh": 1.0, "walk": "forward"}))["ok"]
        await until(lambda: _mode_of(clinic, device) == "running", timeout=10, what="running")
        assert len(_tiles(clinic)) == before  # nothing made up from the junk
        status, body = await clinic.http.call("GET", "/api/health")
        assert (status, body["broker"]) == (200, "connected")
        assert (await b.user.request("stop"))["ok"]


async def test_estop_from_the_api_stops_the_belt_and_reset_waits_for_it_to_be_still(
    broker: Broker, tmp_path: Path
) -> None:
    async with clinic_and_daemon(broker, tmp_path) as (clinic, b):
        device = device_of(b)
        call = clinic.http.call
        assert (await b.user.request("set", {"speed_kmh": 2.0, "walk": "backward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh < -1.5, 15, "at speed")
        b.rig.sim.belt.stop_decel_mps2 = 0.15  # coasts down over about 4 s: time to refuse
        async with live_stream(clinic) as stream:
            t0 = time.monotonic()
            status, body = await call("POST", f"/api/treadmills/{device}/estop")
            assert (status, body) == (202, {"sent": True})
            await b.rig.until(lambda: Op.STOP in b.rig.ops_since(t0), 2, "the stop byte")
            await until(
                lambda: any(t["estop_latched"] for _, t in stream.tiles(device, since=t0)),
                what="the tile latched",
            )
            answer = await b.user.wait_for(b.topics.response("estop"))
            assert answer["ok"] is True
            assert str(answer["id"]).startswith("clinic-estop-")
            await until(
                lambda: (
                    (stream.latest(device) or {}).get("speed_kmh", 0) > 0.1
                    and (stream.latest(device) or {}).get("estop_latched") is True
                ),
                what="latched and still moving",
            )
            status, body = await call("POST", f"/api/treadmills/{device}/reset")
            assert status == 409, body
            assert "moves" in body["error"]["message"]
            await b.rig.until(lambda: b.rig.sim.belt.still, 15, "the belt still")
            await until(
                lambda: (stream.latest(device) or {}).get("speed_kmh") == 0,
                what="the tile still",
            )
            status, body = await call("POST", f"/api/treadmills/{device}/reset")
            assert status == 200, body
            assert body["ok"] is True
            await until(lambda: _mode(stream, device) == "idle", what="idle after the reset")
            latest = stream.latest(device)
            assert latest is not None
            assert latest["estop_latched"] is False
            status, body = await call("POST", f"/api/treadmills/{device}/reset")
            assert status == 409  # nothing latched


async def test_commands_are_relayed_and_unknown_treadmills_refused(
    broker: Broker, tmp_path: Path
) -> None:
    async with clinic_and_daemon(broker, tmp_path) as (clinic, b):
        device = device_of(b)
        call = clinic.http.call
        await until(lambda: any(t["device"] == device for t in _tiles(clinic)), what="seen")
        status, body = await call("POST", f"/api/treadmills/{device}/pause")
        assert status == 502  # the daemon's own refusal, with its code
        assert body["ok"] is False
        assert body["error"]["code"] == "not_allowed_in_mode"
        assert (await b.user.request("set", {"speed_kmh": 1.0, "walk": "forward"}))["ok"]
        await b.rig.until(lambda: b.rig.sim.belt.speed_kmh > 0.5, 15, "moving")
        for name, mode in (("pause", "paused"), ("resume", "running"), ("stop", "idle")):
            status, body = await call("POST", f"/api/treadmills/{device}/{name}")
            assert status == 200, body
            assert body["ok"] is True
            await _until_mode(clinic, device, mode)
        for name in ("pause", "reset", "stop"):
            status, body = await call("POST", f"/api/treadmills/never-seen/{name}")
            assert status == 404, body
        status, body = await call("POST", f"/api/treadmills/{device}/explode")
        assert status == 404
        # an e-stop is sent even to a treadmill the service has not heard from
        status, body = await call("POST", "/api/treadmills/never-seen/estop")
        assert (status, body) == (202, {"sent": True})
        status, body = await call("POST", "/api/treadmills/a+b/estop")
        assert status == 400
        assert "device" in body["error"]["message"]


async def _until_mode(clinic: RunningClinic, device: str, mode: str) -> None:
    await until(lambda: _mode_of(clinic, device) == mode, timeout=15, what=f"mode {mode}")


def _mode_of(clinic: RunningClinic, device: str) -> str | None:
    broker = clinic.service.broker
    assert broker is not None
    tile = broker.fleet.get(device)
    return None if tile is None else tile.mode


async def test_the_broker_going_away_and_back(own_broker: Broker, tmp_path: Path) -> None:
    """Without the broker every tile turns stale and the e-stop says it was not sent; once it
    is back the tiles are live again and the e-stop reaches the belt."""
    async with clinic_and_daemon(own_broker, tmp_path) as (clinic, b):
        device = device_of(b)
        call = clinic.http.call
        async with live_stream(clinic) as stream:
            await until(lambda: _live_now(clinic, device), what="the tile live")
            await own_broker.akill()
            gone = time.monotonic()
            await until(
                lambda: any(t["stale"] for _, t in stream.tiles(device, since=gone)),
                timeout=STALE_S + 2,
                what="the tile stale",
            )
            status, body = await call("POST", f"/api/treadmills/{device}/estop")
            assert status == 503, body
            assert "NOT" in body["error"]["message"]
            await own_broker.astart()  # the same port
            await until(lambda: _live_now(clinic, device), timeout=15, what="the tile live again")
            # the test's own MQTT client does not reconnect: the belt is started in process
            assert (await b.rig.run(ManualSet(1.0, WalkDirection.FORWARD))).ok
            await b.rig.until(lambda: b.rig.sim.belt.speed_kmh > 0.5, 15, "moving")
            t0 = time.monotonic()
            status, body = await call("POST", f"/api/treadmills/{device}/estop")
            assert (status, body) == (202, {"sent": True})
            await b.rig.until(lambda: Op.STOP in b.rig.ops_since(t0), 2, "the stop byte")


def _live_now(clinic: RunningClinic, device: str) -> bool:
    broker = clinic.service.broker
    tile = None if broker is None else broker.fleet.get(device)
    return tile is not None and tile.online is True and not tile.stale


async def test_estop_without_a_broker_says_so(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with no broker behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        mqtt={"host": "127.0.0.1", "port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        clinic={"database": f"sqlite:///{tmp_path}/clinic.db", "port": 0},
    )
    async with running_clinic(settings) as clinic:
        status, body = await clinic.http.call("POST", "/api/treadmills/tm-1/estop")
        assert status == 503
        assert body["error"]["code"] == "no_broker"
        assert "NOT sent" in body["error"]["message"]
        assert "treadmill's own stop" in body["error"]["message"]
        status, body = await clinic.http.call("GET", "/api/treadmills")
        assert (status, body) == (200, {"treadmills": []})
        status, body = await clinic.http.call("POST", "/api/treadmills/tm-1/stop")
        assert status == 404


async def test_a_closed_page_is_forgotten(broker: Broker, tmp_path: Path) -> None:
    prefix = f"t{secrets.token_hex(3)}"
    settings = clinic_settings(broker, f"sqlite:///{tmp_path}/clinic.db", prefix)
    async with running_clinic(settings) as clinic:
        hub = _hub(clinic)
        async with live_stream(clinic), live_stream(clinic):
            assert hub.clients == 2
        await until(lambda: hub.clients == 0, what="both streams cleaned up")


def _hub(clinic: RunningClinic) -> LiveHub:
    api = clinic.service.api
    assert api is not None
    return api.treadmills.hub


# --- the hub alone: coalescing and a slow client -------------------------------------------


def _tile(device: str, speed: float) -> Tile:
    return Tile(device, online=True, speed_kmh=speed, stale=False)


def _parse(text: str) -> tuple[str, dict[str, Any]]:
    stream = Stream()
    stream.take(text.rstrip("\n"))
    _, name, data = stream.events[0]
    return name, data


async def test_a_slow_client_gets_the_latest_of_each_device_at_most_12_a_second() -> None:
    hub = LiveHub(lambda: [_tile("tm-1", 0.0)])
    events = hub.stream()
    name, data = _parse(await anext(events))
    assert (name, data["treadmills"][0]["device"]) == ("snapshot", "tm-1")
    for i in range(1, 500):  # a flood while the client reads nothing
        hub.publish(_tile("tm-1", i / 100))
    hub.publish(_tile("tm-2", 1.0))
    got = [_parse(await anext(events)), _parse(await anext(events))]
    assert sorted((n, d["device"], d["speed_kmh"]) for n, d in got) == [
        ("tile", "tm-1", 4.99),
        ("tile", "tm-2", 1.0),
    ]
    # a device updated 50 times a second reaches a reader at most 12.5 times a second
    received: list[float] = []

    async def read() -> None:
        async for text in events:
            received.append(_parse(text)[1]["speed_kmh"])  # noqa: PERF401 - as they come

    reader = asyncio.create_task(read())
    t0 = time.monotonic()
    speed = 5.0
    while time.monotonic() - t0 < 1.0:
        speed += 0.01
        hub.publish(_tile("tm-1", round(speed, 2)))
        await asyncio.sleep(0.02)
    last = round(speed, 2)
    await until(lambda: bool(received) and received[-1] == last, what="the latest delivered")
    assert 3 <= len(received) <= 15, received  # 12.5 a second, give or take the loop
    hub.close()
    async with asyncio.timeout(2):
        await reader
    assert hub.clients == 0


async def test_ten_a_second_with_jitter_passes_at_once() -> None:
    """A daemon's 10 Hz telemetry arrives 80-120 ms apart: each update goes out when it comes
    (the limit is on average, with one interval of slack), not held to 100 ms after the last."""
    now = [0.0]
    hub = LiveHub(list, clock=lambda: now[0])
    events = hub.stream()
    assert _parse(await anext(events)) == ("snapshot", {"treadmills": []})
    for i, gap in enumerate([0.1, 0.08, 0.12, 0.08, 0.09, 0.11, 0.08, 0.12, 0.1, 0.12] * 3):
        now[0] += gap
        hub.publish(_tile("tm-1", i / 10))
        async with asyncio.timeout(1):  # the clock stands still: one held would never come
            name, data = _parse(await anext(events))
        assert (name, data["speed_kmh"]) == ("tile", i / 10)
    hub.close()


async def test_a_quiet_stream_sends_keep_alive_comments() -> None:
    hub = LiveHub(list, keepalive_s=0.05)
    events = hub.stream()
    assert _parse(await anext(events)) == ("snapshot", {"treadmills": []})
    async with asyncio.timeout(2):
        assert await anext(events) == ": keep-alive\n\n"
        assert await anext(events) == ": keep-alive\n\n"
    await events.aclose()  # type: ignore[attr-defined]
    assert hub.clients == 0
