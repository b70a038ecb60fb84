"""What the MQTT bridge needs of the controller, and nothing more.

The bridge depends on this Protocol, not on `control.Controller`: a test double, or a
controller split differently inside, plugs in as long as these calls keep their meaning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from treadctl.core.commands import Command, Result
from treadctl.core.safety import EStopCause
from treadctl.core.state import Event, Snapshot

Listener = Callable[[Snapshot | Event], None]


class ControllerPort(Protocol):
    def submit(self, command: Command) -> asyncio.Future[Result]:
        """Queue a command; the future resolves with its answer (`busy` when the queue is full)."""
        ...

    def emergency_stop_now(self, cause: EStopCause, detail: str) -> asyncio.Task[None]:
        """The stop is on the serial port before this returns; the task confirms it."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """Every snapshot and event from now on, called synchronously."""
        ...

    def heart_rate(self, bpm: int) -> Result:
        """A safety input, applied at once and never queued."""
        ...

    def broker_state(self, connected: bool) -> None:
        """The broker went up or down; the controller decides what a lost broker means."""
        ...
