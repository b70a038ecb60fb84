"""The clock protocol injected into everything that reads time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds on a monotonic scale."""
        ...


monotonic: Clock = time.monotonic
