"""Fakes for time, the only thing tests fake."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that moves only when told; call it like time.monotonic."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set_us(self, micros: int) -> None:
        self.now = micros / 1_000_000
