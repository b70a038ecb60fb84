"""`treadctl run` as a real process, driven with mosquitto_pub, mosquitto_sub and mosquitto_rr."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mqtt.brokers import NEEDS_CLIENTS, Broker
from mqtt.processes import Output, mosquitto_pub, reading, start_daemon, version_args

CLIENTS = all(shutil.which(p) for p in ("mosquitto_pub", "mosquitto_sub", "mosquitto_rr"))
pytestmark = [pytest.mark.mosquitto_clients, pytest.mark.skipif(not CLIENTS, reason=NEEDS_CLIENTS)]


@dataclass
class Watch(Output):
    """`mosquitto_sub -v` on the device's topics, lines parsed as they come."""

    lines: list[tuple[str, Any]] = field(default_factory=list)

    def take(self, line: str) -> None:
        topic, _, payload = line.rstrip("\n").partition(" ")
        try:
            self.lines.append((topic, json.loads(payload)))
        except ValueError:
            self.lines.append((topic, payload))

    async def wait_for(self, topic: str, check: Any, timeout: float = 10) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for t, payload in self.lines:
                    if t == topic and check(payload):
                        return payload
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def watching(broker: Broker, pattern: str) -> AsyncIterator[Watch]:
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), *version_args(broker),
        "-v", "-t", pattern,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    watch = Watch(proc)
    async with reading(watch, "test.mosquitto_sub"):
        yield watch


@contextlib.asynccontextmanager
async def daemon(
    broker: Broker, tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    device = f"i{secrets.token_hex(3)}"
    config = tmp_path / "treadctl.toml"
    config.write_text(
        f'[device]\nid = "{device}"\ndriver = "sim"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        "[telemetry]\nrate_hz = 10\n"
    )
    proc = await start_daemon(config)
    try:
        yield proc, f"treadctl/{device}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_mosquitto_clients_drive_the_daemon(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as (proc, base), watching(broker, f"{base}/#") as sub:
        await sub.wait_for(f"{base}/availability", lambda p: p == "online")
        await asyncio.sleep(3.2)  # rule 7: starts are refused for 3 s after power-up
        await mosquitto_pub(
            broker, f"{base}/cmd/set", '{"id": 1, "speed_kmh": 1.0, "walk": "backward"}'
        )
        ok = await sub.wait_for(f"{base}/response/set", lambda p: p["id"] == 1)
        assert ok["ok"] is True, ok
        moving = await sub.wait_for(
            f"{base}/telemetry", lambda p: p["speed_kmh"] > 0.5 and p["belt"] == "reverse"
        )
        assert moving["incline_pct"] == 0
        await mosquitto_pub(broker, f"{base}/cmd/set", "garbage")
        bad = await sub.wait_for(f"{base}/response/set", lambda p: p["ok"] is False)
        assert bad["error"]["code"] == "invalid_json"
        await mosquitto_pub(broker, f"{base}/cmd/estop", "STOP!")  # any payload
        await sub.wait_for(f"{base}/state", lambda p: p["mode"] == "estop")
        await sub.wait_for(f"{base}/event", lambda p: p["type"] == "estop")
        await sub.wait_for(f"{base}/telemetry", lambda p: p["speed_kmh"] == 0, 15)
        # SIGTERM: belt stopped, `offline` published, exit 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        await sub.wait_for(f"{base}/availability", lambda p: p == "offline")


async def test_mosquitto_rr_request_response(mqtt5_broker: Broker, tmp_path: Path) -> None:
    """mosquitto_rr needs MQTT 5 (response topics): on mosquitto whatever the other tests use."""
    broker = mqtt5_broker
    async with daemon(broker, tmp_path) as (_, base), watching(broker, f"{base}/#") as sub:
        await sub.wait_for(f"{base}/availability", lambda p: p == "online")
        rr = await asyncio.create_subprocess_exec(
            "mosquitto_rr", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
            "-t", f"{base}/cmd/pause", "-e", f"{base}/replies/rr", "-m", '{"id": "rr-1"}',
            "-W", "10",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await rr.communicate()
        assert rr.returncode == 0
        answer = json.loads(out)
        assert answer["id"] == "rr-1"
        assert answer["error"]["code"] == "not_allowed_in_mode"  # nothing to pause


async def test_a_killed_daemon_is_offline_by_its_last_will(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as (proc, base), watching(broker, f"{base}/#") as sub:
        await sub.wait_for(f"{base}/availability", lambda p: p == "online")
        proc.kill()
        await proc.wait()
        # the broker notices the dead connection and publishes the will (keepalive 30 s bounds it;
        # a killed process closes its socket at once, so it is immediate in practice)
        await sub.wait_for(f"{base}/availability", lambda p: p == "offline", 10)
