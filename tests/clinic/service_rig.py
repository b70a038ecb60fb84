"""The clinic service in the test's own event loop, on a real broker and a real database, with
its web API on a free port; plus a plain MQTT client playing a daemon's part of the record
protocol, and an HTTP helper that does not block the loop."""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from waiting import until

from mqtt.brokers import Broker
from mqtt.harness import protocol
from treadctl.clinic import accounts
from treadctl.clinic.database import open_database
from treadctl.clinic.service import ClinicService
from treadctl.config import Settings

ADMIN = "admin"
PASSWORD = "a test password, long enough"


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
    """A client of the service's API with its own cookie jar: `login` once, then every call
    carries the login's cookie and CSRF token, as the dashboard's pages do."""

    base: str
    csrf: str | None = None
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

        def send() -> tuple[int, Any]:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(self.base + path, data=data, method=method)
            if self.csrf is not None:
                request.add_header("X-CSRF-Token", self.csrf)
            for name, value in (headers or {}).items():
                request.add_header(name, value)
            try:
                with opener.open(request, timeout=10) as response:
                    raw, status, kind = response.read(), response.status, response.headers
            except urllib.error.HTTPError as exc:
                raw, status, kind = exc.read(), exc.code, exc.headers
            if kind.get_content_type() == "application/json":
                return status, json.loads(raw)
            return status, raw

        return await asyncio.to_thread(send)

    async def login(self, username: str = ADMIN, password: str = PASSWORD) -> Http:
        status, answer = await self.call(
            "POST", "/api/login", {"username": username, "password": password}
        )
        assert status == 200, answer
        self.csrf = answer["csrf"]
        return self

    def cookie(self) -> str:
        """The Cookie header the jar would send (for a raw connection)."""
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def anonymous(self) -> Http:
        return Http(self.base)


def add_account(
    database_url: str, username: str = ADMIN, password: str = PASSWORD, *, admin: bool = True
) -> None:
    database = open_database(database_url)
    try:
        with database.session() as db:
            if username not in {a.username for a in accounts.list_accounts(db)}:
                accounts.add_account(db, username, password, admin=admin, now=datetime.now(UTC))
    finally:
        database.close()


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
async def running_clinic(settings: Settings, *, login: bool = True) -> AsyncIterator[RunningClinic]:
    """The service, with an admin account whose login `http` holds (unless `login=False`)."""
    if login:
        assert settings.clinic.database is not None
        await asyncio.to_thread(add_account, settings.clinic.database)
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
        if login:
            await http.login()
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
