"""When a status poll reads the measured elevation: at every poll while it may be moving, once a
second while it stands still.

The elevation is shown and recorded, never judged by a safety rule (those watch the belt: its
state and speed, read at every poll). Reading it once a second while still takes a third of the
poll's exchanges off the line and the CPU (decisions §30); a change is followed at the full
rate from the first reading that differs, and from any command that may move it.
"""

from __future__ import annotations

import math

EVERY_S = 1.0  # the longest a still elevation goes unread
SETTLE_S = 2.0  # read at every poll this long after a command that may move it


class ElevationReads:
    def __init__(self, every_s: float = EVERY_S, settle_s: float = SETTLE_S) -> None:
        self.every_s = every_s
        self.settle_s = settle_s
        self._next = -math.inf
        self._watch_until = -math.inf
        self._last: float | None = None
        self._moving = False

    def due(self, now: float) -> bool:
        return self._moving or now < self._watch_until or now >= self._next

    def commanded(self, now: float) -> None:
        """A command that may move the elevation (set, auto stop, e-stop) has gone out."""
        self._watch_until = now + self.settle_s

    def read(self, value: float, now: float) -> None:
        self._moving = self._last is not None and value != self._last
        self._last = value
        self._next = now + self.every_s
