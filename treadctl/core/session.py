"""One therapy session's accounting: its id, pauses, distance, time walked backward, heart rate.

Pure: the owner passes the time (monotonic seconds) into every call. The figures a finished
session reports are those of docs/mqtt.md's `session_finished` event.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from treadctl.core.commands import ManualSet
from treadctl.core.person import PersonLimits
from treadctl.core.runner import ProgramRunner, SetPoint

# How a session ended; `fault` is an e-stop for a lost link or a failure.
Ending = Literal["finished", "stopped", "estop", "fault"]


def new_session_id(wall: float) -> str:
    """Sortable by start time (UTC), with a random tail for sessions started in one second."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(wall)) + "-" + secrets.token_hex(2)


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session's totals, rounded as they are reported."""

    duration_s: float
    distance_m: float
    backward_s: float
    heart_rate_avg_bpm: int | None
    heart_rate_peak_bpm: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "distance_m": self.distance_m,
            "backward_s": self.backward_s,
            "heart_rate_avg_bpm": self.heart_rate_avg_bpm,
            "heart_rate_peak_bpm": self.heart_rate_peak_bpm,
        }


@dataclass
class TherapySession:
    id: str
    program: str  # a program name, or "manual"
    started: float
    runner: ProgramRunner | None = None
    manual: ManualSet | None = None
    person: str | None = None
    limits: PersonLimits | None = None  # the person's, for this session only
    paused_at: float | None = None
    paused_total: float = 0.0
    distance_m: float = 0.0
    setpoint: SetPoint | None = None
    backward_s: float = 0.0  # belt moving with the person walking backward
    hr_weighted: float = 0.0  # bpm × seconds, for a time-weighted average
    hr_seconds: float = 0.0
    hr_peak: int | None = None
    last_sample_at: float | None = None

    def pause(self, now: float) -> None:
        self.paused_at = now

    def resume(self, now: float) -> None:
        if self.paused_at is not None:
            self.paused_total += now - self.paused_at
        self.paused_at = None

    def travelled(self, speed_kmh: float, seconds: float) -> None:
        """The belt ran at `speed_kmh` for `seconds` (between two status reads)."""
        self.distance_m += speed_kmh / 3.6 * seconds

    def account(self, now: float, *, backward_moving: bool, bpm: int | None) -> None:
        """Add the time since the previous tick to the session's totals."""
        dt = 0.0 if self.last_sample_at is None else max(0.0, now - self.last_sample_at)
        self.last_sample_at = now
        if backward_moving:
            self.backward_s += dt
        if bpm is not None:
            self.hr_weighted += bpm * dt
            self.hr_seconds += dt
            self.hr_peak = bpm if self.hr_peak is None else max(self.hr_peak, bpm)

    def summary(self, now: float) -> SessionSummary:
        return SessionSummary(
            duration_s=round(self.elapsed(now), 2),
            distance_m=round(self.distance_m, 1),
            backward_s=round(self.backward_s, 1),
            heart_rate_avg_bpm=round(self.hr_weighted / self.hr_seconds)
            if self.hr_seconds > 0
            else None,
            heart_rate_peak_bpm=self.hr_peak,
        )

    def elapsed(self, now: float) -> float:
        paused = self.paused_total + (now - self.paused_at if self.paused_at is not None else 0.0)
        return max(0.0, now - self.started - paused)
