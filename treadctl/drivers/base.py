"""The driver interface every treadmill protocol implements."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import ClassVar, Self

from treadctl.core.device import BeltDirection, Capabilities, DeviceStatus
from treadctl.drivers.errors import Rejected


class Driver(abc.ABC):
    """One treadmill on one link. Speeds in km/h, inclines in %; the driver converts.

    A driver sends one command at a time, except `emergency_stop`, which goes on the wire at
    once, ahead of anything queued and without waiting for a command already in flight.
    """

    name: ClassVar[str]
    capabilities: Capabilities
    # Set by emergency_stop: commands that would move the belt are refused until release().
    # The session checks it after its lock is taken and again before every retry, so neither a
    # command queued behind the e-stop nor one waiting for its retry can restart the belt.
    halted: bool = False
    # True between a confirmed start and the next stop: a belt found stopped then was stopped
    # by the treadmill itself (its key, button or watchdog).
    _started: bool = False

    def _mark_started(self) -> None:
        """Record a confirmed start, unless an emergency stop landed while it was on the wire:
        the stop written behind the start wins, and so must the driver's own state."""
        if self.halted:
            raise Rejected(
                f"{self.name}: emergency stop during the start; the belt stays stopped",
                code="halted",
            )
        self._started = True

    def _check_speed_range(self, speed_kmh: float) -> None:
        if not 0 <= speed_kmh <= self.capabilities.speed_max_kmh:
            raise Rejected(
                f"{speed_kmh:.2f} km/h is outside 0-{self.capabilities.speed_max_kmh:.1f} km/h",
                code="out_of_range",
            )

    def _check_incline_range(self, incline_pct: float) -> None:
        caps = self.capabilities
        if not caps.incline_min_pct <= incline_pct <= caps.incline_max_pct:
            raise Rejected(
                f"incline {incline_pct} % is outside "
                f"{caps.incline_min_pct}-{caps.incline_max_pct} %",
                code="out_of_range",
            )

    def release(self) -> None:
        """Allow the belt to move again after an emergency stop (the owner's reset)."""
        self.halted = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the link and command the belt to stop (a driver never inherits a moving belt)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the link. Does not stop the belt: the owner stops it first."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the belt at zero set speed, arming the treadmill's watchdog where it has one."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """A controlled stop done by the treadmill itself."""

    @abc.abstractmethod
    def stop_now(self) -> None:
        """Write the fastest stop the protocol has at once, without awaiting, and halt.

        For callers that cannot await (message callbacks, e-stop inputs). Raises LinkLost.
        """

    @abc.abstractmethod
    async def emergency_stop(self) -> None:
        """`stop_now()`, then wait until the treadmill confirms it."""

    @abc.abstractmethod
    async def set_speed(self, speed_kmh: float, belt: BeltDirection) -> float:
        """Set the belt speed; returns the speed actually commanded after wire rounding."""

    @abc.abstractmethod
    async def set_incline(self, incline_pct: float) -> float:
        """Set the incline; returns the incline actually commanded after wire rounding."""

    @abc.abstractmethod
    async def read_status(self) -> DeviceStatus:
        """Ask the treadmill how it is (this also feeds its watchdog).

        The owner calls it at least every `capabilities.max_poll_interval_s` while the link is
        open (the controller, every `device.poll_interval_s`): the driver runs no poll of its
        own, so that a wedged owner stops feeding the watchdog and the treadmill stops the belt.
        """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
