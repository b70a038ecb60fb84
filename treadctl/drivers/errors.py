"""The drivers' exception family. Everything a driver raises on purpose is a DriverError."""

from __future__ import annotations

from treadctl.transport import serial


class DriverError(Exception):
    """Base of every error a driver raises."""


class CodecError(DriverError):
    """Bytes that do not parse as the protocol says (noise, garbage, a wrong reply)."""


class LinkLost(DriverError, serial.LinkLost):  # noqa: N818 - as the transport names it
    """The serial link is gone: port closed, adapter unplugged, or no valid answer for too long.

    The transport's LinkLost as the drivers raise it: the session translates the one into the
    other, so a driver's owner catches DriverError alone."""


class TimedOut(DriverError, TimeoutError):  # noqa: N818
    """One request got no complete answer in time."""


class Rejected(DriverError):  # noqa: N818
    """The treadmill (or the driver, for a capability it lacks) refused a command."""

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code
