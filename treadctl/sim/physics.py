"""Belt physics of the simulated treadmill. Pure: every method takes the time it happens at."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from treadctl.core import units


class StopCause(enum.StrEnum):
    COMMAND = "command"
    WATCHDOG = "watchdog"
    SAFETY_KEY = "safety_key"


@dataclass
class BeltPhysics:
    """A belt whose speed follows the set speed at bounded acceleration.

    Speeds are signed km/h: negative is the belt running in reverse.
    """

    accel_mps2: float = 0.5
    stop_decel_mps2: float = 1.0  # an immediate stop (A2) or the safety key: faster than a ramp
    incline_pct_per_s: float = 1.0
    watchdog_s: float = 0.5
    speed_kmh: float = 0.0
    set_speed_kmh: float = 0.0
    incline_pct: float = 0.0
    set_incline_pct: float = 0.0
    running: bool = False
    watchdog_armed: bool = False
    key_present: bool = True
    slip_limit_kmh: float | None = None  # fault: the belt cannot go faster (slipping, weak motor)
    stop_cause: StopCause | None = None
    last_rx: float = 0.0
    watchdog_silence_s: float | None = None  # how long the line was quiet when the watchdog fired
    _fast_stop: bool = field(default=False, repr=False)
    _t: float | None = field(default=None, repr=False)

    @property
    def still(self) -> bool:
        return self.speed_kmh == 0.0

    def received(self, now: float) -> None:
        """Any byte from the host feeds the watchdog."""
        self.last_rx = now

    def start(self, now: float, *, watchdog: bool) -> bool:
        self.advance(now)
        if not self.key_present:
            return False
        self.running = True
        self.watchdog_armed = watchdog
        self.stop_cause = None
        self._fast_stop = False
        return True

    def stop(self, now: float, cause: StopCause = StopCause.COMMAND, *, fast: bool = True) -> None:
        self.advance(now)
        if not self.running and self.stop_cause is not None:
            cause = self.stop_cause  # already stopped (key, watchdog): keep the first cause
        self._halt(cause, fast=fast)

    def _halt(self, cause: StopCause, *, fast: bool) -> None:
        self.running = False
        self.watchdog_armed = False
        self.set_speed_kmh = 0.0
        self.stop_cause = cause
        self._fast_stop = fast

    def set_speed(self, now: float, signed_kmh: float) -> bool:
        """Refused (False) when it would change direction while the belt moves."""
        self.advance(now)
        if signed_kmh != 0 and self.speed_kmh != 0 and (signed_kmh > 0) != (self.speed_kmh > 0):
            return False
        self.set_speed_kmh = signed_kmh
        return True

    def set_incline(self, now: float, pct: float) -> None:
        self.advance(now)
        self.set_incline_pct = pct

    def pull_key(self, now: float) -> None:
        self.advance(now)
        self.key_present = False
        if self.running:
            self.stop(now, StopCause.SAFETY_KEY)

    def insert_key(self, now: float) -> None:
        self.advance(now)
        self.key_present = True

    def advance(self, now: float) -> None:
        """Move the model to time `now`."""
        if self._t is None:
            self._t = now
            return
        dt = max(0.0, now - self._t)
        self._t = max(self._t, now)
        if self.running and self.watchdog_armed and now - self.last_rx > self.watchdog_s:
            self.watchdog_silence_s = now - self.last_rx
            self._halt(StopCause.WATCHDOG, fast=False)
        target = self.set_speed_kmh if self.running else 0.0
        if self.slip_limit_kmh is not None:
            target = max(-self.slip_limit_kmh, min(target, self.slip_limit_kmh))
        accel = self.stop_decel_mps2 if (self._fast_stop and not self.running) else self.accel_mps2
        step = units.accel_kmh_per_s(accel) * dt
        self.speed_kmh = _approach(self.speed_kmh, target, step)
        self.incline_pct = _approach(
            self.incline_pct, self.set_incline_pct, self.incline_pct_per_s * dt
        )


def _approach(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step
