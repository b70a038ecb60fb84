"""What a wire personality is to the pty server, and what the server offers it."""

from __future__ import annotations

from typing import Protocol

from treadctl.core.clock import Clock
from treadctl.drivers import csafe_codec, trackmaster_codec
from treadctl.drivers.delta_vfd_codec import Access
from treadctl.sim.physics import BeltPhysics

# One decoded request, as the simulator's wire log keeps it.
WireRequest = (
    trackmaster_codec.Request
    | trackmaster_codec.BadRequest
    | csafe_codec.Request
    | csafe_codec.BadFrame
    | Access
)


class Wire(Protocol):
    """The host side of the line, as a personality sees it."""

    clock: Clock

    def answer(self, data: bytes) -> None:
        """Send bytes to the host (fault injection applies: silent, late, garbage)."""

    def record(self, request: WireRequest, at: float) -> None:
        """Log a decoded request for the tests."""


class Personality(Protocol):
    """A treadmill's protocol on top of the shared belt physics."""

    name: str
    belt: BeltPhysics

    async def start(self, wire: Wire) -> None: ...

    async def stop(self) -> None: ...

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host; answers go out through the wire given to start()."""

    def describe(self) -> str:
        """Protocol state for `treadctl sim`'s status line ("" when there is none)."""
