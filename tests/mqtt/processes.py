"""Processes for end-to-end tests: `treadctl sim` and `treadctl run` as real subprocesses, and
`mosquitto_pub` as the user; the simulated treadmill's own report says what the belt did."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from mqtt.brokers import Broker
from mqtt.harness import User
from treadctl.mqtt.topics import Topics

BELT = re.compile(r"belt: (running|stopped), (forward|reverse) ([0-9.]+) km/h")


@dataclass
class Output:
    """A process's standard output, each line handed to `take` as it arrives."""

    proc: asyncio.subprocess.Process

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.take(raw.decode())

    def take(self, line: str) -> None:
        raise NotImplementedError


@contextlib.asynccontextmanager
async def reading(output: Output, name: str, *, kill: bool = False) -> AsyncIterator[None]:
    """`output` read by a task while the block runs; then the process, if it still runs, is
    terminated (or killed) and waited for, and the reader ended."""
    reader = asyncio.create_task(output.read(), name=name)
    try:
        yield
    finally:
        proc = output.proc
        if proc.returncode is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


@dataclass
class Sim(Output):
    """`treadctl sim` in its own process; its `belt:` lines with the time they arrived."""

    lines: list[tuple[float, str]] = field(default_factory=list)

    def take(self, line: str) -> None:
        self.lines.append((time.monotonic(), line.rstrip()))

    def belt(self, since: float = 0.0) -> list[tuple[float, str, str, float]]:
        """(time, running|stopped, direction, km/h) for each report since `since`."""
        out = []
        for at, line in self.lines:
            if at >= since and (m := BELT.search(line)):
                out.append((at, m[1], m[2], float(m[3])))
        return out

    def now(self) -> tuple[str, str, float] | None:
        reports = self.belt()
        return reports[-1][1:] if reports else None

    async def until(self, check: object, timeout: float, what: str, since: float = 0.0) -> float:
        """Waits for a report after `since` passing check(state, direction, kmh, line); returns
        its time."""
        assert callable(check)
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for at, line in self.lines[seen:]:
                    if at < since:
                        continue
                    if (m := BELT.search(line)) and check(m[1], m[2], float(m[3]), line):
                        return at
                seen = len(self.lines)
                await asyncio.sleep(0.02)
        raise AssertionError(what)  # pragma: no cover - the timeout raises first


@contextlib.asynccontextmanager
async def simulator(link: Path) -> AsyncIterator[Sim]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "treadctl", "sim", "--driver", "woodway", "--link", str(link),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    sim = Sim(proc)
    async with reading(sim, "test.sim.reader"):
        async with asyncio.timeout(10):
            while not link.exists():
                await asyncio.sleep(0.05)
        yield sim


def write_config(path: Path, broker: Broker, link: Path, device: str, extra: str = "") -> None:
    """The daemon's TOML: the Woodway driver on the simulator's link, 10 Hz telemetry."""
    path.write_text(
        f'log_level = "WARNING"\n'
        f'[device]\nid = "{device}"\ndriver = "woodway"\nport = "{link}"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        "[telemetry]\nrate_hz = 10\n" + extra
    )


async def start_daemon(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "treadctl", "run", "--config", str(config),
        env=os.environ | {"TREADCTL_LOG_LEVEL": "WARNING"},
    )  # fmt: skip


def version_args(broker: Broker) -> list[str]:
    """The mosquitto clients' protocol option for this broker."""
    return ["-V", "mqttv5" if broker.protocol == "5" else "mqttv311"]


async def mosquitto_pub(broker: Broker, topic: str, message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), *version_args(broker),
        "-q", "1", "-t", topic, "-m", message,
    )  # fmt: skip
    assert await proc.wait() == 0


async def online(user: User, topics: Topics, after: int) -> None:
    """Availability `online` again after `after` availability messages were seen."""
    await user.wait_for(
        topics.availability,
        lambda _: (
            len(user.on(topics.availability)) > after
            and user.on(topics.availability)[-1] == "online"
        ),
        15,
    )
