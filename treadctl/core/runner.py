"""Run a timeline against a clock: the current step, the set-point, and the events.

Pure and clock-injected. Boundaries are absolute: a step starts at
    start + paused time + offset / time_scale
and nothing is ever a sum of sleeps, so however late or early the owner polls, nothing drifts.
Time is integer microseconds inside.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from treadctl.core.clock import Clock
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.timeline import US, Step, StepKind, Timeline, expand_steps, step_index


class RunnerError(Exception):
    """A runner command that is not possible now (e.g. skip during a countdown)."""


class RunnerStatus(enum.StrEnum):
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class StepStarted:
    index: int
    step: Step
    at_us: int  # scheduled wall time, µs on the runner's clock


@dataclass(frozen=True, slots=True)
class Cue:
    text: str
    step: Step
    at_us: int


@dataclass(frozen=True, slots=True)
class Finished:
    at_us: int


RunnerEvent = StepStarted | Cue | Finished


@dataclass(frozen=True, slots=True)
class SetPoint:
    status: RunnerStatus
    index: int
    step: Step
    speed_kmh: float
    belt: BeltDirection
    walk: WalkDirection
    incline_pct: float
    elapsed_s: float  # program time since the start, pauses excluded
    step_remaining_s: float
    remaining_s: float


class ProgramRunner:
    """Follows a Timeline on a clock. `time_scale` > 1 runs it faster (demo, tests)."""

    def __init__(self, timeline: Timeline, clock: Clock, *, time_scale: float = 1.0) -> None:
        if not timeline.steps:
            raise RunnerError("the timeline has no steps")
        if time_scale <= 0:
            raise RunnerError("time_scale must be positive")
        self.timeline = timeline
        self.clock = clock
        self.time_scale = time_scale
        self.status = RunnerStatus.READY
        self.steps: list[Step] = list(timeline.steps)
        self._accel = timeline.profile.accel_kmh_s
        self._start_us = 0
        self._paused_us = 0  # total wall time spent paused
        self._pause_began_us: int | None = None
        self._emitted = -1  # index of the last step whose start was reported
        self._frozen_p: int | None = None  # program time when paused, finished or aborted
        # After a resume the belt restarts from zero: set-points stay within a ramp band from
        # (program time, speed) so they never jump.
        self._band: tuple[int, float] | None = None

    # --- time ----------------------------------------------------------------------------------

    def _now_us(self) -> int:
        return round(self.clock() * US)

    def _program_us(self, now_us: int) -> int:
        if self._frozen_p is not None:
            return self._frozen_p
        return round((now_us - self._start_us - self._paused_us) * self.time_scale)

    def wall_us(self, program_us: int) -> int:
        """When (runner clock, µs) program time `program_us` is reached, given pauses so far."""
        return self._start_us + self._paused_us + round(program_us / self.time_scale)

    @property
    def total_us(self) -> int:
        return self.steps[-1].end_us

    def next_boundary_s(self) -> float | None:
        """When (runner clock, s) the next step starts or the program ends; None unless running.

        The owner wakes then instead of at its next regular poll, so phase changes are on time.
        """
        if self.status is not RunnerStatus.RUNNING:
            return None
        following = self._emitted + 1
        p = self.steps[following].start_us if following < len(self.steps) else self.total_us
        return (self.wall_us(p) + 1) / US  # +1 µs: reached even after rounding to whole µs

    # --- commands ------------------------------------------------------------------------------

    def start(self) -> list[RunnerEvent]:
        if self.status is not RunnerStatus.READY:
            raise RunnerError(f"cannot start: the runner is {self.status}")
        self._start_us = self._now_us()
        self.status = RunnerStatus.RUNNING
        return self._advance(self._start_us)

    def pause(self) -> list[RunnerEvent]:
        if self.status is not RunnerStatus.RUNNING:
            raise RunnerError(f"cannot pause: the runner is {self.status}")
        now = self._now_us()
        events = self._advance(now)
        if self.status is RunnerStatus.RUNNING:
            self._frozen_p = self._program_us(now)
            self._pause_began_us = now
            self.status = RunnerStatus.PAUSED
        return events

    def resume(self) -> list[RunnerEvent]:
        if self.status is not RunnerStatus.PAUSED or self._pause_began_us is None:
            raise RunnerError(f"cannot resume: the runner is {self.status}")
        now = self._now_us()
        self._paused_us += now - self._pause_began_us
        self._pause_began_us = None
        p = self._frozen_p or 0
        self._frozen_p = None
        self._band = (p, 0.0)  # the belt was brought to a stop while paused
        self.status = RunnerStatus.RUNNING
        return self._advance(now)

    def skip(self) -> list[RunnerEvent]:
        """End the current phase now; the next one follows (after a reversal sequence if due)."""
        if self.status is not RunnerStatus.RUNNING:
            raise RunnerError(f"cannot skip: the runner is {self.status}")
        now = self._now_us()
        events = self._advance(now)
        if self.status is not RunnerStatus.RUNNING:
            return events
        p = self._program_us(now)
        index = self._index_at(p)
        step = self.steps[index]
        if step.kind is not StepKind.PHASE or step.phase is None:
            raise RunnerError(
                f"cannot skip during the {step.name}: it is part of the safety sequence"
            )
        speed = self._speed(p, index)
        rest = self.timeline.instances[step.phase.seq + 1 :]
        # Re-plan from here with the belt where it is, so a reversal still ramps down fully.
        self.steps = [*self.steps[:index], _truncate(step, p)]
        self.steps += expand_steps(
            rest, self.timeline.profile, start_us=p, start_kmh=speed, current_walk=step.walk
        )
        self._band = None
        return events + self._advance(now)

    def abort(self) -> list[RunnerEvent]:
        if self.status in (RunnerStatus.FINISHED, RunnerStatus.ABORTED):
            return []
        now = self._now_us()
        events = self._advance(now) if self.status is RunnerStatus.RUNNING else []
        self._frozen_p = self._program_us(now)
        self.status = RunnerStatus.ABORTED
        return events

    # --- reading -------------------------------------------------------------------------------

    def poll(self) -> tuple[SetPoint, list[RunnerEvent]]:
        now = self._now_us()
        events = self._advance(now) if self.status is RunnerStatus.RUNNING else []
        return self.setpoint(now), events

    def setpoint(self, now_us: int | None = None) -> SetPoint:
        now = self._now_us() if now_us is None else now_us
        p = (
            max(0, min(self._program_us(now), self.total_us))
            if self.status is not RunnerStatus.READY
            else 0
        )
        index = self._index_at(p)
        step = self.steps[index]
        moving = self.status is RunnerStatus.RUNNING
        return SetPoint(
            status=self.status,
            index=index,
            step=step,
            speed_kmh=self._speed(p, index) if moving else 0.0,
            belt=step.belt,
            walk=step.walk,
            incline_pct=step.incline_pct,
            elapsed_s=p / US,
            step_remaining_s=max(0, step.end_us - p) / US,
            remaining_s=max(0, self.total_us - p) / US,
        )

    # --- internals -----------------------------------------------------------------------------

    def _index_at(self, p: int) -> int:
        return step_index(self.steps, p)

    def _speed(self, p: int, index: int) -> float:
        step = self.steps[index]
        ideal = step.speed_at(p - step.start_us)
        if self._band is None:
            return ideal
        band_p, band_kmh = self._band
        reach = self._accel * max(0, p - band_p) / US
        return min(max(ideal, band_kmh - reach), band_kmh + reach)

    def _advance(self, now: int) -> list[RunnerEvent]:
        """Events for every boundary reached by `now`, each at its scheduled time."""
        p = self._program_us(now)
        events: list[RunnerEvent] = []
        while self._emitted + 1 < len(self.steps) and self.steps[self._emitted + 1].start_us <= p:
            self._emitted += 1
            step = self.steps[self._emitted]
            at = self.wall_us(step.start_us)
            events.append(StepStarted(self._emitted, step, at))
            if step.cue:
                events.append(Cue(step.cue, step, at))
        if p >= self.total_us and self.status is RunnerStatus.RUNNING:
            events.append(Finished(self.wall_us(self.total_us)))
            self._frozen_p = self.total_us
            self.status = RunnerStatus.FINISHED
        return events


def _truncate(step: Step, p: int) -> Step:
    return replace(step, duration_us=max(0, p - step.start_us))
