"""The e-stop's wire side and the dedicated e-stop inputs' registry.

The controller's `_halt_now` settles the state; this writes the driver's fastest stop
synchronously, confirms it in a task (bounded by the driver's own timeouts) and stops the belt
once more when the controller exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import structlog

from treadctl.core.state import InputHealth
from treadctl.drivers.base import Driver
from treadctl.drivers.errors import DriverError

log = structlog.get_logger(__name__)

CONFIRM_ON_EXIT_S = 1.0
_yield_cpu = getattr(os, "sched_yield", lambda: None)  # POSIX; a no-op where it is missing


class EStopWire:
    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._confirmations: set[asyncio.Task[None]] = set()

    def write(self) -> None:
        """The stop bytes, handed to the serial port before this returns; then the CPU is
        offered to whatever carries them on."""
        try:
            self._driver.stop_now()
        except DriverError as exc:
            # Link gone: the treadmill's own watchdog stops the belt (docs/safety.md, rule 8).
            log.error("emergency stop could not be written", error=str(exc))  # noqa: TRY400 - expected, no traceback
            return
        # The kernel has the bytes, but the next hop may be a process or a kernel worker that
        # needs this CPU (a pty's reader, ser2net or socat for a networked treadmill, the tty
        # layer's flush work); the caller's bookkeeping (events, the session's end, a
        # snapshot) took about 1.5 ms first. Measured in docs/performance.md, "the last round".
        _yield_cpu()

    def confirm(self) -> asyncio.Task[None]:
        """Wait for the treadmill's confirmation of the stop, in a task of its own."""
        task = asyncio.get_running_loop().create_task(
            self._confirm(), name="treadctl.controller.estop"
        )
        self._confirmations.add(task)
        task.add_done_callback(self._confirmations.discard)
        return task

    async def _confirm(self) -> None:
        try:
            await self._driver.emergency_stop()
        except DriverError as exc:
            # Link gone: the treadmill's own watchdog stops the belt (docs/safety.md, rule 8).
            log.error("emergency stop could not be confirmed", error=str(exc))  # noqa: TRY400 - expected, no traceback

    async def on_exit(self, *, link_ok: bool) -> None:
        """The controller is ending: stop the belt, waiting at most CONFIRM_ON_EXIT_S."""
        for task in list(self._confirmations):
            task.cancel()
        if not link_ok:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CONFIRM_ON_EXIT_S):
                await self._driver.emergency_stop()
            log.info("belt stopped on controller exit")


class EStopInputs:
    """The dedicated e-stop inputs as last reported, by name (docs/estop.md)."""

    def __init__(self) -> None:
        self._by_name: dict[str, InputHealth] = {}

    def report(self, health: InputHealth) -> bool:
        """Record `health`; whether the input had reported before."""
        known = health.name in self._by_name
        self._by_name[health.name] = health
        return known

    def all(self) -> tuple[InputHealth, ...]:
        return tuple(self._by_name.values())
