"""A simulated e-stop button box on a pty: heartbeats as the reference firmware sends them, with
press, release, the start button (GO), silence, garbage and unplug controls (tests, `treadctl
sim --driver estop-box`, and `treadctl demo` when a heartbeat input is configured)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import structlog

from treadctl.estop.protocol import SEQ_MODULO, go_line, heartbeat_line, stop_line
from treadctl.sim.lifecycle import Simulator
from treadctl.sim.pty_port import PtyPort

log = structlog.get_logger(__name__)

PERIOD_S = 0.1  # the firmware's heartbeat period (the contract allows up to 0.2 s)


class SimulatedButtonBox(Simulator):
    """Use as `async with SimulatedButtonBox(link=PATH) as box: box.press()`."""

    def __init__(self, *, link: Path | None = None, period_s: float = PERIOD_S) -> None:
        self.link = link
        self.period_s = period_s
        self.pressed = False
        self.silent = False
        self.bad_crc = False  # heartbeats with a wrong checksum
        self.sent = 0  # lines written
        self._seq = 0
        self._port = PtyPort(link=link, name="estop-box")
        self._task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return self._port.path

    async def start(self) -> None:
        self._port.plug()
        self._task = asyncio.create_task(self._beat(), name="treadctl.sim[estop-box].heartbeat")
        log.info("simulated button box ready", path=self.path, link=str(self.link))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._port.unplug()

    # --- controls ------------------------------------------------------------------------------

    def press(self) -> None:
        """The button goes down: a STOP line at once, then heartbeats saying pressed."""
        self.pressed = True
        if not self.silent:
            self._send(stop_line(self._next_seq()))

    def release(self) -> None:
        self.pressed = False

    def go(self) -> None:
        """The start button: a GO line at once (confirms a start waiting for it)."""
        if not self.silent:
            self._send(go_line(self._next_seq()))

    def send_garbage(self, data: bytes | None = None, n: int = 16) -> bytes:
        data = data if data is not None else random.randbytes(n)  # noqa: S311 - noise, not secrets
        self._send(data)
        return data

    def unplug(self) -> None:
        self._port.unplug()

    def replug(self) -> None:
        if not self._port.plugged:
            self._port.plug()

    @property
    def plugged(self) -> bool:
        return self._port.plugged

    def describe(self) -> str:
        parts = [
            "PRESSED" if self.pressed else "released",
            "SILENT" if self.silent else f"heartbeat every {self.period_s:g} s",
        ]
        if self.bad_crc:
            parts.append("BAD CRC")
        parts.append(f"on {self.path}" if self.plugged else "UNPLUGGED")
        return ", ".join(parts)

    # --- internals -----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % SEQ_MODULO
        return seq

    async def _beat(self) -> None:
        while True:
            if not self.silent:
                line = heartbeat_line(self._next_seq(), self.pressed)
                if self.bad_crc:
                    line = line[:-3] + (b"00" if line[-3:-1] != b"00" else b"01") + b"\n"
                self._send(line)
            await asyncio.sleep(self.period_s)

    def _send(self, data: bytes) -> None:
        if self._port.write(data):
            self.sent += 1
