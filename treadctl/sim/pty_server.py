"""Serve a simulated treadmill on a pseudo-terminal, with fault injection.

The host opens `path` (or the `link` symlink) like a USB-serial adapter and cannot tell the
difference: bytes go through the kernel's pty, answers come from the protocol personality.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from treadctl.core.clock import Clock
from treadctl.drivers.trackmaster_codec import BadRequest, Dialect, Request
from treadctl.sim import PERSONALITIES
from treadctl.sim.csafe import CsafePersonality
from treadctl.sim.delta_vfd import DeltaVfdPersonality
from treadctl.sim.lifecycle import Simulator
from treadctl.sim.personality import Personality, WireRequest
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_port import PtyPort
from treadctl.sim.trackmaster import TrackmasterPersonality

log = structlog.get_logger(__name__)


def make_personality(name: str, belt: BeltPhysics) -> Personality:
    """A personality with its defaults (tests build their own to change them)."""
    match name:
        case "trackmaster" | "woodway":
            return TrackmasterPersonality(Dialect(name), belt)
        case "csafe":
            return CsafePersonality(belt)
        case "delta-vfd":
            return DeltaVfdPersonality(belt)
    raise ValueError(f"unknown simulator personality {name!r} (known: {', '.join(PERSONALITIES)})")


@dataclass
class Faults:
    """Fault injection switches; tests and `treadctl sim` flip them while it runs."""

    silent: bool = False  # receive (and feed the watchdog) but never answer
    late_s: float = 0.0  # answer this late
    garbage_answers: bool = False  # answer with random bytes instead


@dataclass(frozen=True, slots=True)
class Received:
    at: float
    request: WireRequest


@dataclass
class WireLog:
    """Everything that crossed the wire, for tests that check the bytes."""

    rx: bytearray = field(default_factory=bytearray)
    tx: bytearray = field(default_factory=bytearray)
    requests: list[Received] = field(default_factory=list)

    def ops(self) -> list[int]:
        """Trackmaster opcodes (and refused bytes) in the order they came."""
        out: list[int] = []
        for r in self.requests:
            if isinstance(r.request, Request):
                out.append(r.request.op)
            elif isinstance(r.request, BadRequest):
                out.append(r.request.byte)
        return out


class SimulatedTreadmill(Simulator):
    """A treadmill on a pty. Use as `async with SimulatedTreadmill("woodway") as sim: sim.path`.

    `personality` is a name from PERSONALITIES, or a personality built with its own settings
    (then it brings its belt).
    """

    def __init__(
        self,
        personality: str | Personality = "woodway",
        *,
        link: Path | None = None,
        clock: Clock = time.monotonic,
        tick_s: float = 0.02,
        belt: BeltPhysics | None = None,
    ) -> None:
        if isinstance(personality, str):
            self.protocol = make_personality(personality, belt or BeltPhysics())
            self.personality = personality
        else:
            if belt is not None and belt is not personality.belt:
                raise ValueError("a personality instance brings its own belt")
            self.protocol = personality
            self.personality = personality.name
        self.link = link
        self.clock = clock
        self.tick_s = tick_s
        self.belt = self.protocol.belt
        self.faults = Faults()
        self.wire = WireLog()
        self._port = PtyPort(link=link, on_data=self._on_data, name=self.personality)
        self._tick: asyncio.Task[None] | None = None
        self._late: set[asyncio.TimerHandle] = set()
        self._rx_event = asyncio.Event()

    @property
    def path(self) -> str:
        return self._port.path

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._plug()
        self.belt.advance(self.clock())
        await self.protocol.start(self)
        self._tick = asyncio.create_task(
            self._run_physics(), name=f"treadctl.sim[{self.personality}].physics"
        )
        log.info(
            "simulated treadmill ready",
            personality=self.personality,
            path=self.path,
            link=str(self.link),
        )

    async def stop(self) -> None:
        self._unplug()
        await self.protocol.stop()
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None

    # --- fault controls ------------------------------------------------------------------------

    def pull_key(self) -> None:
        self.belt.pull_key(self.clock())

    def insert_key(self) -> None:
        self.belt.insert_key(self.clock())

    def send_garbage(self, data: bytes | None = None, n: int = 16) -> bytes:
        """Write noise onto the line now (random bytes unless given)."""
        data = data if data is not None else random.randbytes(n)  # noqa: S311 - noise, not secrets
        self._write(data)
        return data

    def unplug(self) -> None:
        """The adapter vanishes: the pty closes under the host, the symlink goes away."""
        self._unplug()
        log.info("simulated treadmill unplugged")

    def replug(self) -> None:
        """The device comes back, on a new pty; the symlink follows it."""
        if not self._port.plugged:
            self._plug()
            log.info("simulated treadmill plugged in", path=self.path)

    @property
    def plugged(self) -> bool:
        return self._port.plugged

    async def wait_rx(self, timeout: float = 2.0) -> None:
        """Wait until some byte arrives (tests use it to sync with the host)."""
        self._rx_event.clear()
        async with asyncio.timeout(timeout):
            await self._rx_event.wait()

    # --- internals -----------------------------------------------------------------------------

    def _plug(self) -> None:
        self._port.plug()

    def _unplug(self) -> None:
        for handle in self._late:
            handle.cancel()
        self._late.clear()
        self._port.unplug()

    def _on_data(self, data: bytes) -> None:
        self.wire.rx.extend(data)
        self._rx_event.set()
        self.protocol.receive(data, self.clock())

    # --- the Wire a personality talks through ---------------------------------------------------

    def record(self, request: WireRequest, at: float) -> None:
        self.wire.requests.append(Received(at, request))

    def answer(self, data: bytes) -> None:
        if not data or self.faults.silent:
            return
        if self.faults.garbage_answers:
            data = random.randbytes(len(data))  # noqa: S311
        if self.faults.late_s > 0:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def later() -> None:
                self._late.discard(handle)
                self._write(data)

            handle = loop.call_later(self.faults.late_s, later)
            self._late.add(handle)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._port.write(data):
            self.wire.tx.extend(data)

    async def _run_physics(self) -> None:
        while True:
            self.belt.advance(self.clock())
            await asyncio.sleep(self.tick_s)
