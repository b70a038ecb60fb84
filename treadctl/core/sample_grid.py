"""When a sample taken at the controller's ticks is due: the recorder's and the telemetry's rate.

Samples keep to a grid of one period. Ticks jitter, so a quarter of a period early is on time;
after a gap longer than a period (a stalled loop) the grid re-anchors: a sample is skipped,
never sent twice in a burst. Pure: the caller passes its clock's time.
"""

from __future__ import annotations


class SampleGrid:
    def __init__(self, rate_hz: float) -> None:
        self.period_s = 1.0 / rate_hz
        self.due = float("-inf")  # when the next sample is due, on the caller's clock

    def set_rate(self, rate_hz: float) -> None:
        """Takes effect from the next sample."""
        self.period_s = 1.0 / rate_hz

    def is_due(self, now: float) -> bool:
        return now - self.due >= -self.period_s / 4

    def take(self, now: float) -> bool:
        """Whether a sample is due at `now`; if so, the grid moves on a period."""
        if not self.is_due(now):
            return False
        late = now - self.due
        self.due = (self.due if late <= self.period_s else now) + self.period_s
        return True
