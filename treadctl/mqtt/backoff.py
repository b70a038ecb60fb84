"""Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
And Jitter"): many daemons restarting together do not reconnect in lockstep."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    min_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt: uniform in [min, cap], cap growing by `factor`."""
        cap = min(self.max_s, self.min_s * self.factor**self.attempt)
        self.attempt += 1
        return self.min_s + (cap - self.min_s) * self.rand()

    def reset(self) -> None:
        self.attempt = 0
