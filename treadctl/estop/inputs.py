"""The e-stop inputs' readers: each turns its port into health changes for the controller.

A trip goes to `report` from the callback that saw it (the serial reader for a heartbeat box,
the poller's wake-up for modem lines), and the controller writes the stop bytes before `report`
returns: no task switch and no command queue on the way (docs/estop.md, measured in
bench/estop_input_latency.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol, cast

import serial
import structlog

from treadctl.config.models import EStopInputConfig
from treadctl.core.clock import Clock
from treadctl.core.state import InputHealth
from treadctl.estop.protocol import Change, HeartbeatMonitor, LoopMonitor, Status
from treadctl.transport.serial import LinkLost, SerialLink, SerialSettings

log = structlog.get_logger(__name__)

Report = Callable[[InputHealth, bool], None]  # (health, trip)
Confirm = Callable[[str], None]  # the start button of the input named so was pressed
PULSE_WINDOW_S = 0.1  # how long a USB adapter may take to show an output change on its input


class EStopInput(Protocol):
    config: EStopInputConfig

    def health(self) -> InputHealth: ...

    async def run(self) -> NoReturn: ...


class _Reporter:
    """Hands every change to `report`, logs it once, and keeps the current health."""

    def __init__(self, config: EStopInputConfig, report: Report) -> None:
        self.config = config
        self._report = report
        self._health = InputHealth(
            config.name, config.kind, Status.DISCONNECTED, "not connected yet"
        )

    def health(self) -> InputHealth:
        return self._health

    def _apply(self, change: Change | None) -> None:
        if change is None:
            return
        self._health = InputHealth(self.config.name, self.config.kind, change.status, change.detail)
        self._report(self._health, change.trip)  # the stop bytes first, the log after
        if change.healthy:
            log.info("e-stop input healthy", input=self.config.name)
        elif change.trip:
            log.warning("e-stop input tripped", input=self.config.name, detail=change.detail)
        else:
            log.info("e-stop input", input=self.config.name, status=str(change.status))


class HeartbeatInput(_Reporter):
    """A button box sending heartbeats on a serial port (docs/estop.md, line format)."""

    def __init__(
        self,
        config: EStopInputConfig,
        report: Report,
        *,
        clock: Clock = time.monotonic,
        confirm: Confirm | None = None,
    ) -> None:
        super().__init__(config, report)
        self.clock = clock
        self.confirm = confirm
        self.monitor = HeartbeatMonitor(
            healthy_after=config.healthy_after, timeout_s=config.timeout_s
        )

    async def run(self) -> NoReturn:
        settings = SerialSettings(self.config.port, self.config.baudrate)
        while True:
            link = SerialLink(settings, on_data=self._on_data)
            try:
                await link.open()
            except LinkLost as exc:
                self._apply(self.monitor.disconnected(str(exc)))
                await asyncio.sleep(self.config.reconnect_s)
                continue
            try:
                self._apply(self.monitor.connected(self.clock()))
                reason = await self._watch(link)
            finally:
                await link.close(grace_s=0.05)
            self._apply(self.monitor.disconnected(f"port closed: {reason}"))
            await asyncio.sleep(self.config.reconnect_s)

    def _on_data(self, data: bytes) -> None:
        # In the event loop's reader callback: a STOP line reaches the controller from here.
        for change in self.monitor.feed(data, self.clock()):
            self._apply(change)
        if self.monitor.take_go():
            if self.confirm is not None and self.config.start_button:
                self.confirm(self.config.name)
            else:
                log.warning(
                    "GO line from a box without start_button = true: ignored",
                    input=self.config.name,
                )

    async def _watch(self, link: SerialLink) -> str:
        """Check for silence at each deadline until the port goes away; returns why it did."""
        lost = asyncio.ensure_future(link.wait_lost())
        try:
            while True:
                deadline = self.monitor.deadline()
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                done, _ = await asyncio.wait({lost}, timeout=timeout)
                if done:
                    return lost.result()
                self._apply(self.monitor.check(self.clock()))
        finally:
            lost.cancel()


class ModemPort(Protocol):
    """The modem-line side of a pyserial port (a device, or loop:// in tests)."""

    rts: bool
    dtr: bool

    @property
    def cts(self) -> bool: ...

    @property
    def dsr(self) -> bool: ...

    @property
    def cd(self) -> bool: ...

    def close(self) -> None: ...


def open_serial(port: str) -> ModemPort:
    """A device path or a pyserial URL (loop://), opened with RTS and DTR asserted."""
    return cast("ModemPort", serial.serial_for_url(port, exclusive=True, timeout=0))


@dataclass
class _Connection:
    """One opening of the port: its thread's stop flag, how it ended, and when the thread last
    read the input line (monotonic; written by the thread, read by the loop's deadline check)."""

    stop: threading.Event
    ended: asyncio.Future[str]
    last_read_at: float | None = None


class ModemLinesInput(_Reporter):
    """A normally-closed switch from an output line (RTS/DTR) to an input line (CTS/DSR/DCD).

    A thread owns the port: TIOCMGET is a USB control transfer on FTDI and CP210x adapters (up to
    milliseconds) and must not block the event loop that drives the treadmill. It samples every
    `poll_interval_s` and wakes the loop with each sample; the loop keeps the health logic, and
    trips when the thread has not read the line for `timeout_s` (a read that hangs) or ends.
    """

    def __init__(
        self,
        config: EStopInputConfig,
        report: Report,
        *,
        opener: Callable[[str], ModemPort] = open_serial,
    ) -> None:
        super().__init__(config, report)
        self.opener = opener
        self.monitor = LoopMonitor(healthy_after=config.healthy_after, timeout_s=config.timeout_s)

    async def run(self) -> NoReturn:
        loop = asyncio.get_running_loop()
        while True:
            conn = _Connection(threading.Event(), loop.create_future())
            worker = threading.Thread(
                target=self._serve,
                args=(loop, conn),
                name=f"treadctl.estop_input[{self.config.name}]",
                daemon=True,
            )
            worker.start()
            try:
                reason = await self._watch(conn)
            finally:
                # The thread closes the port and ends within one poll interval, or, stuck in a
                # read, when the read returns; it is never waited for.
                conn.stop.set()
            self._apply(self.monitor.disconnected(reason))
            await asyncio.sleep(self.config.reconnect_s)

    async def _watch(self, conn: _Connection) -> str:
        """Check the reading deadline until the thread ends; returns why it ended."""
        while True:
            done, _ = await asyncio.wait({conn.ended}, timeout=self._next_check_s(conn))
            if done:
                return conn.ended.result()
            self._apply(self.monitor.check(time.monotonic(), conn.last_read_at))

    def _next_check_s(self, conn: _Connection) -> float:
        last = conn.last_read_at
        if last is None:  # still opening: nothing is due yet
            return self.config.timeout_s
        # At the deadline, and no more often than the thread samples (also while silent).
        due = last + self.config.timeout_s - time.monotonic()
        return max(due, self.config.poll_interval_s)

    # --- the poller thread (touches the port only; everything else goes through the loop) ----

    def _serve(self, loop: asyncio.AbstractEventLoop, conn: _Connection) -> None:
        def post(callback: Callable[..., object], *args: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us: we are done
                loop.call_soon_threadsafe(callback, *args)

        def finish(reason: str) -> None:
            if not conn.ended.done():
                conn.ended.set_result(reason)

        try:
            port = self.opener(self.config.port)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the input is not there
            post(finish, f"cannot open {self.config.port}: {_describe(exc)}")
            return
        try:
            self._set_output(port, True)
            conn.last_read_at = time.monotonic()  # the deadline runs from here
            post(self._apply_connected)
            self._poll(port, conn, post)
        except (serial.SerialException, OSError, ValueError) as exc:
            post(finish, f"port {self.config.port} lost: {exc}")
        except Exception as exc:
            # A dead thread would leave the input reading `ok`: end the connection instead,
            # which trips like a lost port, and reopen.
            log.exception("e-stop input sampling failed", input=self.config.name)
            post(finish, f"port {self.config.port} failed: {_describe(exc)}")
        finally:
            with contextlib.suppress(Exception):
                port.close()

    def _poll(self, port: ModemPort, conn: _Connection, post: Callable[..., None]) -> None:
        interval = self.config.poll_interval_s
        next_pulse = time.monotonic() + self.config.pulse_test_s
        while not conn.stop.wait(interval):
            if self.config.pulse_test_s > 0 and time.monotonic() >= next_pulse:
                next_pulse = time.monotonic() + self.config.pulse_test_s
                if not self._pulse(port, conn):
                    post(self._apply_miswired)
                    continue
            post(self._apply_sample, self._read_input(port, conn))

    def _pulse(self, port: ModemPort, conn: _Connection) -> bool:
        """Drop the output and check the input follows, then raise it again. False when the
        input stays closed without the output (a short, or a line the adapter holds high)."""
        self._set_output(port, False)
        try:
            return self._wait_input(port, conn, want=False)
        finally:
            self._set_output(port, True)
            self._wait_input(port, conn, want=True)  # a loop left open shows in the next sample

    def _wait_input(self, port: ModemPort, conn: _Connection, *, want: bool) -> bool:
        deadline = time.monotonic() + PULSE_WINDOW_S
        while self._read_input(port, conn) is not want:
            if time.monotonic() >= deadline or conn.stop.wait(self.config.poll_interval_s / 4):
                return False
        return True

    def _set_output(self, port: ModemPort, on: bool) -> None:
        if self.config.output == "rts":
            port.rts = on
        else:
            port.dtr = on

    def _read_input(self, port: ModemPort, conn: _Connection) -> bool:
        match self.config.input:
            case "cts":
                closed = bool(port.cts)
            case "dsr":
                closed = bool(port.dsr)
            case "dcd":
                closed = bool(port.cd)
        conn.last_read_at = time.monotonic()
        return closed

    # --- back in the event loop -----------------------------------------------------------------

    def _apply_connected(self) -> None:
        self._apply(self.monitor.connected())

    def _apply_sample(self, closed: bool) -> None:
        self._apply(self.monitor.sample(closed))

    def _apply_miswired(self) -> None:
        self._apply(
            self.monitor.miswired(
                f"{self.config.input} stays on with {self.config.output} off (short or miswired)"
            )
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def make_input(
    config: EStopInputConfig,
    report: Report,
    *,
    clock: Clock = time.monotonic,
    confirm: Confirm | None = None,
) -> HeartbeatInput | ModemLinesInput:
    """`confirm` hears the start button of a heartbeat box configured with start_button."""
    if config.kind == "heartbeat":
        return HeartbeatInput(config, report, clock=clock, confirm=confirm)
    return ModemLinesInput(config, report)
