"""Pieces of the clinic's end-to-end test (test_end_to_end.py): a short program of the test's
own, the daemons' and the clinic service's configuration files, the clinic service as a real
`treadctl clinic` process, what the daemons' own session stores say, and a watcher of the
commands that cross the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiomqtt

from clinic.service_rig import ADMIN, PASSWORD, Http
from mqtt.brokers import Broker
from mqtt.harness import protocol
from treadctl.store.schema import open_readonly

PROGRAM = "e2e-backward"
# 12 s walking backward at the person's comfortable speed (16 s with the ramps): short enough
# for three sessions in a test, long enough to kill the broker and the clinic in the middle.
PROGRAM_TOML = f"""\
name = "{PROGRAM}"
title = "A short backward walk (the clinic's end-to-end test)"

[plan]
sessions_per_week = 3
weeks = 4

[parameters.comfortable_backward_kmh]
description = "The person's comfortable backward speed."
default = 0.6
min = 0.3
max = 3.0

[[phases]]
name = "backward walking"
duration = "12s"
walk = "backward"
speed_fraction = 1.0
ramp = "3s"
"""
BROKER_LOSS_S = 2.0  # the daemons stop a session this long after losing the broker
STOP_S = 20.0  # for a process to end after SIGTERM (a daemon ramps its belt down first)
READY_S = 60.0  # for the clinic service to answer, migrations included, on a loaded machine


def write_program(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PROGRAM}.toml"
    path.write_text(PROGRAM_TOML)
    return path


def _mqtt(broker: Broker) -> str:
    # reconnect soon: a broker restarted in the middle of the test is found within a second
    return (
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        "reconnect_min_s = 0.1\nreconnect_max_s = 1.0\n"
    )


@dataclass(frozen=True)
class Treadmill:
    """One daemon's files: its simulator's link, its configuration, its session store."""

    device: str
    link: Path
    config: Path
    store: Path


def treadmill(
    workdir: Path, broker: Broker, device: str, *, programs: Path, clinic_database: str
) -> Treadmill:
    """The daemon's TOML: the Woodway driver on the simulator's link, its own store, the
    programs directory, a short broker loss; `[clinic] database` for `treadctl start --person`
    (the daemon does not read it)."""
    here = workdir / device
    here.mkdir()
    found = Treadmill(device, here / "treadmill", here / "treadctl.toml", here / "sessions.db")
    found.config.write_text(
        f'log_level = "WARNING"\n'
        f'[device]\nid = "{device}"\ndriver = "woodway"\nport = "{found.link}"\n'
        + _mqtt(broker)
        + "[telemetry]\nrate_hz = 10\n"
        f"[safety]\nbroker_loss_s = {BROKER_LOSS_S}\n"
        f'[programs]\ndirectory = "{programs}"\n'
        f'[storage]\npath = "{found.store}"\n'
        f'[clinic]\ndatabase = "{clinic_database}"\n'
    )
    return found


def clinic_config(path: Path, broker: Broker, *, database: str, port: int, programs: Path) -> Path:
    path.write_text(
        'log_level = "INFO"\n'
        + _mqtt(broker)
        + f'[clinic]\ndatabase = "{database}"\nport = {port}\n'
        f'[programs]\ndirectory = "{programs}"\n'
    )
    return path


def first_admin(database: str, username: str = ADMIN, password: str = PASSWORD) -> None:
    """The first admin account, made as docs/dashboard.md says: `treadctl users add NAME
    --admin --password-stdin` on the service's database (before the service runs)."""
    made = subprocess.run(
        [sys.executable, "-m", "treadctl", "users", "add", username, "--admin",
         "--password-stdin", "--database", database],
        input=password + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


def _append(path: Path) -> IO[bytes]:
    return path.open("ab")


async def ended(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, then SIGKILL if it has not exited within STOP_S; its exit status."""
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(STOP_S):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1


@contextlib.asynccontextmanager
async def running(proc: asyncio.subprocess.Process) -> AsyncIterator[asyncio.subprocess.Process]:
    """`proc` ended (SIGTERM, then SIGKILL) when the block leaves, however it leaves."""
    try:
        yield proc
    finally:
        await ended(proc)


@dataclass
class ClinicProcess:
    """`treadctl clinic` in its own process on a port of the test's choosing, its log (stderr)
    in a file. Started again on the same port after a SIGKILL."""

    config: Path
    port: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    client: Http | None = None

    @property
    def http(self) -> Http:
        """One client for the process's life and its restarts (a login is kept in the
        database, so it outlives a restart of the service)."""
        if self.client is None:
            self.client = Http(f"http://127.0.0.1:{self.port}")
        return self.client

    async def start(self) -> None:
        await self.launch()
        await self.ready()

    async def launch(self) -> None:
        """The process started; `ready()` waits until it serves."""
        assert self.proc is None or self.proc.returncode is not None
        with _append(self.log) as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "treadctl", "clinic", "--config", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        self.starts += 1

    async def ready(self) -> None:
        """Until the API answers and the service is on the broker (bounded)."""
        proc = self.proc
        assert proc is not None
        try:
            async with asyncio.timeout(READY_S):
                while True:
                    if proc.returncode is not None:
                        raise AssertionError(f"the clinic service exited: {self.tail()}")
                    with contextlib.suppress(OSError):
                        status, health = await self.http.call("GET", "/api/health")
                        if status == 200 and health["broker"] == "connected":
                            return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"the clinic service not ready after {READY_S} s: {self.tail()}"
            ) from None

    async def kill(self) -> None:
        proc = self.proc
        assert proc is not None
        proc.kill()
        await proc.wait()

    async def stop(self) -> int:
        return -1 if self.proc is None else await ended(self.proc)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.asynccontextmanager
async def clinic_process(config: Path, port: int, log: Path) -> AsyncIterator[ClinicProcess]:
    """Launched, not yet ready (it imports and migrates while the caller starts other
    processes); ended when the block leaves."""
    clinic = ClinicProcess(config, port, log)
    try:
        await clinic.launch()
        yield clinic
    finally:
        await clinic.stop()


def stored_sessions(store: Path) -> list[dict[str, Any]]:
    """The daemon's own records (its SQLite store, read-only as another process reads it),
    oldest first; none before its first session."""
    if not store.is_file():
        return []
    with contextlib.closing(open_readonly(store)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT id, device_id, person, started, ended, ended_how, end_cause, delivered "
            "FROM sessions ORDER BY started"
        ).fetchall()
    return [dict(row) for row in rows]


async def sessions_of(store: Path) -> list[dict[str, Any]]:
    return await asyncio.to_thread(stored_sessions, store)


@dataclass
class CommandWatch:
    """Every command published under `{prefix}/+/cmd/#`, by whoever: (device, name, body); and
    the daemons' availability."""

    client: aiomqtt.Client
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    availability: dict[str, str] = field(default_factory=dict)

    async def collect(self) -> None:
        async for message in self.client.messages:
            raw = message.payload
            text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
            parts = message.topic.value.split("/")
            if parts[-1] == "availability":
                self.availability[parts[-2]] = text
            else:
                self.seen.append((parts[-3], parts[-1], json.loads(text)))

    def starts(self) -> list[tuple[str, Any]]:
        return [(device, body) for device, name, body in self.seen if name == "start"]


@contextlib.asynccontextmanager
async def watching_commands(broker: Broker, prefix: str) -> AsyncIterator[CommandWatch]:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        protocol=protocol(broker),
        identifier=f"watch-{secrets.token_hex(3)}",
    ) as client:
        await client.subscribe(f"{prefix}/+/cmd/+", qos=1)
        await client.subscribe(f"{prefix}/+/availability", qos=1)
        watch = CommandWatch(client)
        task = asyncio.create_task(watch.collect(), name="test.command-watch")
        try:
            yield watch
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def processes_naming(text: str) -> list[str]:
    """Command lines of this machine's processes that mention `text` (a test's directory):
    what a test left running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found
