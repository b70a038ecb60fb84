"""The link to the treadmill: whether it answers, and reopening it after it stopped answering."""

from __future__ import annotations

import contextlib

import structlog

from treadctl.drivers.base import Driver
from treadctl.drivers.errors import DriverError

log = structlog.get_logger(__name__)


class Link:
    """Up or lost; while lost, a reopen is due every `reconnect_s` (monotonic seconds)."""

    def __init__(self, driver: Driver, reconnect_s: float) -> None:
        self.driver = driver
        self.reconnect_s = reconnect_s
        self.ok = True
        self._next_try = 0.0

    def lost(self, now: float) -> bool:
        """Mark the link lost; False when it already was (a loss is handled once)."""
        if not self.ok:
            return False
        self.ok = False
        self._next_try = now + self.reconnect_s
        return True

    async def let_go(self) -> None:
        """Say stop once more and close the port, both most likely in vain."""
        with contextlib.suppress(DriverError):  # the stop bytes were written already
            await self.driver.emergency_stop()
        with contextlib.suppress(DriverError, OSError):
            await self.driver.close()

    def due(self, now: float) -> bool:
        return not self.ok and now >= self._next_try

    async def reopen(self, now: float) -> bool:
        """Try the port again (opening commands a stop first); True when the treadmill answers."""
        self._next_try = now + self.reconnect_s
        try:
            await self.driver.open()
        except DriverError as exc:
            log.debug("reconnect failed", error=str(exc))
            return False
        self.ok = True
        return True
