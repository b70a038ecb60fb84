"""The one async serial transport: pyserial opens and configures, asyncio does non-blocking I/O.

pyserial-asyncio-fast puts the port's file descriptor on the event loop (add_reader), so no
thread polls. An unplugged adapter or a closed pty shows up as end-of-file or an OSError on the
next read; both become LinkLost here (see docs/decisions.md for the measurements).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import serial
import serial_asyncio_fast
import structlog

log = structlog.get_logger(__name__)


class LinkLost(Exception):  # noqa: N818 - the name says what happened, like ConnectionError
    """The port is gone: it cannot be opened, the adapter was unplugged, or it was closed."""


@dataclass(frozen=True, slots=True)
class SerialSettings:
    port: str
    baudrate: int
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: float = 1


class Receiver(Protocol):
    """Takes a link's bytes as the event loop reads them, for a while (SerialLink.route)."""

    def received(self, data: bytes) -> None: ...

    def ended(self) -> None:
        """The port is gone; SerialLink.lost() says why."""


class _LinkProtocol(asyncio.Protocol):
    """Collects received bytes; remembers how the connection ended."""

    def __init__(self, on_data: Callable[[bytes], None] | None = None) -> None:
        self.on_data = on_data  # called as bytes arrive, instead of buffering them
        self.receiver: Receiver | None = None
        self.buffer = bytearray()
        self.changed = asyncio.Event()
        self.ended: str | None = None
        self.cause: BaseException | None = None
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(data)
            return
        if self.receiver is not None:
            self.receiver.received(data)
            return
        self.buffer.extend(data)
        self.changed.set()

    def eof_received(self) -> bool:
        self.ended = "end of file (device unplugged or port closed)"
        self.changed.set()
        if self.receiver is not None:
            self.receiver.ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended is None:
            self.ended = str(exc) if exc else "end of file (device unplugged or port closed)"
            self.cause = exc
        self.changed.set()
        self.closed.set()
        if self.receiver is not None:
            self.receiver.ended()


class SerialLink:
    """A byte pipe to one serial port. Reads raise LinkLost once the port is gone."""

    def __init__(
        self, settings: SerialSettings, *, on_data: Callable[[bytes], None] | None = None
    ) -> None:
        """`on_data`: a callback for every chunk as the event loop reads it (no `read()` then),
        for inputs that must act within the reader's callback (the e-stop inputs)."""
        self.settings = settings
        self._transport: asyncio.Transport | None = None
        self._protocol = _LinkProtocol(on_data)
        self._lost: LinkLost | None = None

    async def open(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop,
                lambda: self._protocol,
                s.port,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                exclusive=True,  # two daemons on one treadmill would fight over the belt
            )
        except (OSError, serial.SerialException, ValueError) as exc:
            raise LinkLost(f"cannot open serial port {s.port}: {exc}") from exc
        self._transport = transport
        log.debug("serial port open", port=s.port, baudrate=s.baudrate)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._check() is None

    def lost(self) -> LinkLost | None:
        """Why the port is gone, or None while it is open."""
        return self._check()

    def route(self, receiver: Receiver | None) -> None:
        """Hand bytes to `receiver` as the loop reads them, instead of buffering them for
        `read()`; None buffers them again. For exchanges run inside the reader's callback,
        which save the event loop a turn and a task wake-up per answer (decisions §30)."""
        self._protocol.receiver = receiver

    def _check(self) -> LinkLost | None:
        if self._lost is None and self._protocol.ended is not None:
            self._lost = LinkLost(f"serial link {self.settings.port} lost: {self._protocol.ended}")
            self._lost.__cause__ = self._protocol.cause
            log.warning("serial link lost", port=self.settings.port, reason=self._protocol.ended)
        return self._lost

    def write(self, data: bytes) -> None:
        """Queue bytes for the port at once (no await: the e-stop path must not wait)."""
        if (lost := self._check()) is not None:
            raise lost
        if self._transport is None or self._transport.is_closing():
            raise LinkLost(f"serial port {self.settings.port} is not open")
        try:
            self._transport.write(data)
        except (OSError, serial.SerialException) as exc:
            self._protocol.connection_lost(exc)
            raise self._check() or LinkLost(str(exc)) from exc

    async def read(self, timeout: float) -> bytes:
        """Whatever bytes have arrived, waiting at most `timeout` s; b"" when none came."""
        proto = self._protocol
        if not proto.buffer:
            if (lost := self._check()) is not None:
                raise lost
            if self._transport is None:
                raise LinkLost(f"serial port {self.settings.port} is not open")
            proto.changed.clear()
            try:
                async with asyncio.timeout(timeout):
                    await proto.changed.wait()
            except TimeoutError:
                return b""
            if not proto.buffer and (lost := self._check()) is not None:
                raise lost
        data = bytes(proto.buffer)
        proto.buffer.clear()
        return data

    async def wait_lost(self) -> str:
        """Wait until the port is gone (end of file, error, closed); returns why."""
        await self._protocol.closed.wait()
        return self._protocol.ended or "closed"

    def discard_input(self) -> bytes:
        """Drop bytes received but not read yet (late answers, noise) and return them."""
        data = bytes(self._protocol.buffer)
        self._protocol.buffer.clear()
        return data

    async def close(self, grace_s: float = 0.5) -> None:
        """Close the port; unsent bytes get `grace_s` to drain, then they are dropped.

        A stalled peer would otherwise keep a graceful close waiting forever (measured in
        docs/decisions.md), and shutdown must never hang on the serial port.
        """
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if self._protocol.ended is None:
            self._protocol.ended = "closed by treadctl"
        transport.close()
        try:
            async with asyncio.timeout(grace_s):
                await self._protocol.closed.wait()
        except TimeoutError:
            log.warning("serial port did not drain, closing it hard", port=self.settings.port)
            transport.abort()
            await self._protocol.closed.wait()
