"""The clinic service in the test's own event loop, on a real broker and a real database, with
its web API on a free port; plus a plain MQTT client playing a daemon's part of the record
protocol, and an HTTP helper that does not block the loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from waiting import until

from mqtt.brokers import Broker
from mqtt.harness import protocol
from treadctl.clinic.service import ClinicService
from treadctl.config import Settings


def clinic_settings(broker: Broker, database_url: str, prefix: str) -> Settings:
    return Settings(
        mqtt={
            "host": broker.host,
            "port": broker.port,
            "protocol": broker.protocol,
            "prefix": prefix,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
        },
        clinic={"database": database_url, "port": 0},
    )


@dataclass
class Http:
    base: str

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        def send() -> tuple[int, Any]:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(self.base + path, data=data, method=method)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    raw, status, kind = response.read(), response.status, response.headers
            except urllib.error.HTTPError as exc:
                raw, status, kind = exc.read(), exc.code, exc.headers
            if kind.get_content_type() == "application/json":
                return status, json.loads(raw)
            return status, raw

        return await asyncio.to_thread(send)


@dataclass
class RunningClinic:
    service: ClinicService
    task: asyncio.Task[int]
    http: Http
    prefix: str

    async def stop(self) -> int:
        self.service.stop.set()
        async with asyncio.timeout(10):
            return await self.task


@contextlib.asynccontextmanager
async def running_clinic(settings: Settings) -> AsyncIterator[RunningClinic]:
    service = ClinicService(settings)
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(lambda _s: ready.set()), name="test.clinic")
    try:
        async with asyncio.timeout(20):
            done, _ = await asyncio.wait(
                [task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED
            )
        if task in done:
            task.result()  # its error
        http = Http(f"http://127.0.0.1:{service.port}")
        yield RunningClinic(service, task, http, settings.mqtt.prefix)
    finally:
        if not task.done():
            service.stop.set()
            async with asyncio.timeout(10):
                await asyncio.gather(task, return_exceptions=True)


@dataclass
class FakeDaemonLink:
    """A plain MQTT client on a daemon's topics: sends records, sees acks and availability."""

    client: aiomqtt.Client
    prefix: str
    device: str
    acks: list[str] = field(default_factory=list)
    availability: list[str] = field(default_factory=list)

    async def collect(self) -> None:
        async for message in self.client.messages:
            raw = message.payload
            text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
            if message.topic.value.endswith("/record/ack"):
                self.acks.append(json.loads(text)["session"])
            else:
                self.availability.append(text)

    async def send(self, payload: bytes | dict[str, Any]) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.client.publish(f"{self.prefix}/{self.device}/record", raw, qos=1)

    async def wait_ack(self, session_id: str, timeout: float = 10) -> None:
        await until(lambda: session_id in self.acks, timeout=timeout, what=f"ack {session_id}")


@contextlib.asynccontextmanager
async def daemon_link(broker: Broker, prefix: str, device: str) -> AsyncIterator[FakeDaemonLink]:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        protocol=protocol(broker),
        identifier=f"daemon-{secrets.token_hex(3)}",
    ) as client:
        await client.subscribe(
            [(f"{prefix}/{device}/record/ack", 1), (f"{prefix}/clinic/availability", 1)]
        )
        link = FakeDaemonLink(client, prefix, device)
        task = asyncio.create_task(link.collect(), name="test.daemon-link")
        try:
            yield link
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
