"""A simulated e-stop button box on a pty: heartbeats as the reference firmware sends them, with
press, release, silence, garbage and unplug controls (tests, `treadctl sim --driver estop-box`,
and `treadctl demo` when a heartbeat input is configured)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tty
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from treadctl.estop.protocol import SEQ_MODULO, heartbeat_line, stop_line

log = structlog.get_logger(__name__)

PERIOD_S = 0.1  # the firmware's heartbeat period (the contract allows up to 0.2 s)


class SimulatedButtonBox:
    """Use as `async with SimulatedButtonBox(link=PATH) as box: box.press()`."""

    def __init__(self, *, link: Path | None = None, period_s: float = PERIOD_S) -> None:
        self.link = link
        self.period_s = period_s
        self.pressed = False
        self.silent = False
        self.bad_crc = False  # heartbeats with a wrong checksum
        self.path = ""
        self.sent = 0  # lines written
        self._seq = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._plug()
        self._task = asyncio.create_task(self._beat(), name="treadctl.sim[estop-box].heartbeat")
        log.info("simulated button box ready", path=self.path, link=str(self.link))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._unplug()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- controls ------------------------------------------------------------------------------

    def press(self) -> None:
        """The button goes down: a STOP line at once, then heartbeats saying pressed."""
        self.pressed = True
        if not self.silent:
            self._send(stop_line(self._next_seq()))

    def release(self) -> None:
        self.pressed = False

    def send_garbage(self, data: bytes | None = None, n: int = 16) -> bytes:
        data = data if data is not None else random.randbytes(n)  # noqa: S311 - noise, not secrets
        self._send(data)
        return data

    def unplug(self) -> None:
        self._unplug()

    def replug(self) -> None:
        if self._master is None:
            self._plug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

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
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except OSError as exc:  # nobody reading and the pty buffer full: a real box drops too
            log.debug("button box write dropped", error=str(exc))
            return
        self.sent += 1

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            self.link.symlink_to(self.path)

    def _unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
