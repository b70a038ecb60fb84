"""Expand a program into the timeline a device will run: every step with its absolute offset.

Offsets are integer microseconds from the program start, so sums are exact and a 60-minute
program is 3_600_000_000 µs long however it is cut. Speeds follow closed-form linear ramps at
most `max_accel_mps2` steep, so every set-point can be computed for any instant.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from treadctl.core import units
from treadctl.core.device import BeltDirection, Capabilities, WalkDirection
from treadctl.core.program import Block, Program

US = 1_000_000
RetroMode = Literal["reverse-belt", "face-away"]


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What a program is checked against and expanded for: the device, its limits and rules."""

    driver: str
    capabilities: Capabilities
    retro_mode: RetroMode = "reverse-belt"
    max_speed_forward_kmh: float = 6.0
    max_speed_backward_kmh: float = 3.0
    max_incline_forward_pct: float = 15.0
    max_incline_backward_pct: float = 10.0
    max_accel_mps2: float = 0.15
    reversal_standstill_s: float = 2.0
    countdown_s: float = 3.0
    turn_around_s: float = 5.0
    max_session_s: float = 7200.0

    @property
    def accel_kmh_s(self) -> float:
        return units.accel_kmh_per_s(self.max_accel_mps2)

    def belt_for(self, walk: WalkDirection) -> BeltDirection:
        if self.retro_mode == "reverse-belt" and walk is WalkDirection.BACKWARD:
            return BeltDirection.REVERSE
        return BeltDirection.FORWARD

    def speed_cap(self, walk: WalkDirection) -> tuple[float, str]:
        if walk is WalkDirection.BACKWARD:
            return self.max_speed_backward_kmh, "limits.max_speed_backward_kmh"
        return self.max_speed_forward_kmh, "limits.max_speed_forward_kmh"

    def incline_cap(self, walk: WalkDirection) -> tuple[float, str]:
        if walk is WalkDirection.BACKWARD:
            return self.max_incline_backward_pct, "limits.max_incline_backward_pct"
        return self.max_incline_forward_pct, "limits.max_incline_forward_pct"


@dataclass(frozen=True, slots=True)
class PhaseInstance:
    """One phase of the file at one repetition, with its speed resolved for this session."""

    seq: int  # position in the run order (0-based)
    number: int  # 1-based, file order, counting the phases inside blocks
    name: str
    repeat: int | None  # 1-based repetition when inside a repeating block
    duration_us: int
    walk: WalkDirection
    speed_kmh: float
    incline_pct: float
    ramp_s: float
    cue: str | None

    @property
    def label(self) -> str:
        rep = f" (repeat {self.repeat})" if self.repeat is not None else ""
        return f'phase {self.number} "{self.name}"{rep}'


class StepKind(enum.StrEnum):
    COUNTDOWN = "countdown"
    PHASE = "phase"
    RAMP_DOWN = "ramp_down"
    STANDSTILL = "standstill"  # before a belt reversal
    TURN_AROUND = "turn_around"  # face-away: the person turns round on the still belt


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    start_us: int
    duration_us: int
    walk: WalkDirection
    belt: BeltDirection
    from_kmh: float
    speed_kmh: float  # target
    slope_kmh_s: float  # ramp steepness (program time)
    incline_pct: float
    cue: str | None
    phase: PhaseInstance | None = None

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    @property
    def name(self) -> str:
        return self.phase.name if self.phase else self.kind.value.replace("_", " ")

    def speed_at(self, offset_us: int) -> float:
        """The set-point `offset_us` into this step (clamped to the step)."""
        t = min(max(offset_us, 0), self.duration_us) / US
        return _approach(self.from_kmh, self.speed_kmh, self.slope_kmh_s * t)

    @property
    def end_kmh(self) -> float:
        return self.speed_at(self.duration_us)

    def distance_m(self) -> float:
        dur = self.duration_us / US
        delta = abs(self.speed_kmh - self.from_kmh)
        if delta == 0:
            return self.speed_kmh * dur / units.KMH_PER_MPS
        t_ramp = delta / self.slope_kmh_s
        if t_ramp >= dur:
            end = self.end_kmh
            return (self.from_kmh + end) / 2 * dur / units.KMH_PER_MPS
        ramp = (self.from_kmh + self.speed_kmh) / 2 * t_ramp
        return (ramp + self.speed_kmh * (dur - t_ramp)) / units.KMH_PER_MPS


@dataclass(frozen=True, slots=True)
class Timeline:
    program: Program
    profile: DeviceProfile
    parameters: Mapping[str, float]
    instances: tuple[PhaseInstance, ...]
    steps: tuple[Step, ...]
    total_us: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total_us", self.steps[-1].end_us if self.steps else 0)

    @property
    def total_s(self) -> float:
        return self.total_us / US

    def distance_m(self) -> float:
        return sum(step.distance_m() for step in self.steps)

    def step_index_at(self, offset_us: int) -> int:
        return step_index(self.steps, offset_us)


# Speeds this close count as equal: float ramps must not leave a 1e-7 km/h "moving" belt.
SPEED_EPS_KMH = 1e-6


def step_index(steps: Sequence[Step], offset_us: int) -> int:
    """Index of the step running at `offset_us` (the last one once the program is over)."""
    lo, hi = 0, len(steps) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if steps[mid].start_us <= offset_us:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _approach(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step + SPEED_EPS_KMH:
        return target
    return value + step if target > value else value - step


def to_us(seconds: float) -> int:
    return round(seconds * US)


def resolve_parameters(program: Program, given: Mapping[str, float] | None) -> dict[str, float]:
    """The per-session parameters: the given values over the program's marked defaults."""
    given = dict(given or {})
    unknown = set(given) - set(program.parameters)
    if unknown:
        raise ValueError(f"unknown parameter(s) for {program.name}: {', '.join(sorted(unknown))}")
    return {name: given.get(name, p.default) for name, p in program.parameters.items()}


def instances(program: Program, parameters: Mapping[str, float]) -> list[PhaseInstance]:
    """Every phase at every repetition, in the order it runs, speeds resolved."""
    out: list[PhaseInstance] = []
    numbered = program.leaf_phases()
    pos = 0
    for item in program.phases:
        members = item.phases if isinstance(item, Block) else [item]
        repeat = item.repeat if isinstance(item, Block) else 1
        entries = numbered[pos : pos + len(members)]
        pos += len(members)
        for r in range(1, repeat + 1):
            for number, _, phase in entries:
                ref = program.parameter_of(phase)
                if ref is None:
                    speed = phase.speed_kmh or 0.0
                else:
                    speed = (phase.speed_fraction or 0.0) * parameters[ref]
                out.append(
                    PhaseInstance(
                        seq=len(out),
                        number=number,
                        name=phase.name,
                        repeat=r if repeat > 1 else None,
                        duration_us=to_us(phase.duration),
                        walk=phase.walk,
                        speed_kmh=round(speed, 6),
                        incline_pct=phase.incline_pct,
                        ramp_s=phase.ramp,
                        cue=phase.cue,
                    )
                )
    return out


def _walk_words(walk: WalkDirection, profile: DeviceProfile) -> str:
    if walk is WalkDirection.BACKWARD and profile.retro_mode == "face-away":
        return "walk backward, facing away from the console"
    return f"walk {walk.value}"


def expand_steps(
    phases: Sequence[PhaseInstance],
    profile: DeviceProfile,
    *,
    start_us: int = 0,
    start_kmh: float = 0.0,
    current_walk: WalkDirection | None = None,
) -> list[Step]:
    """Steps for `phases`, starting at `start_us` with the belt at `start_kmh`.

    A start (current_walk None) gets a countdown; each change of walk direction gets a ramp down
    to zero, a standstill (reverse-belt) or turn-around (face-away) and a countdown; the end
    gets a ramp down, so every program finishes with the belt still.
    """
    accel = profile.accel_kmh_s
    steps: list[Step] = []
    t, speed = start_us, start_kmh
    walk = current_walk

    def add(
        kind: StepKind,
        dur_us: int,
        w: WalkDirection,
        target: float,
        *,
        slope: float | None = None,
        belt: BeltDirection | None = None,
        incline: float = 0.0,
        cue: str | None = None,
        phase: PhaseInstance | None = None,
    ) -> None:
        nonlocal t, speed
        if dur_us <= 0:
            return
        step = Step(
            kind=kind,
            start_us=t,
            duration_us=dur_us,
            walk=w,
            belt=belt or profile.belt_for(w),
            from_kmh=speed,
            speed_kmh=target,
            slope_kmh_s=accel if slope is None else slope,
            incline_pct=incline,
            cue=cue,
            phase=phase,
        )
        steps.append(step)
        t, speed = step.end_us, step.end_kmh

    def ramp_down(cue: str | None, incline: float) -> None:
        assert walk is not None
        if speed > SPEED_EPS_KMH:
            add(
                StepKind.RAMP_DOWN,
                math.ceil(speed / accel * US),
                walk,
                0.0,
                cue=cue,
                incline=incline,
            )

    for phase in phases:
        belt = profile.belt_for(phase.walk)
        countdown = to_us(profile.countdown_s)
        if walk is None:
            add(
                StepKind.COUNTDOWN,
                countdown,
                phase.walk,
                0.0,
                cue=f"Get ready to {_walk_words(phase.walk, profile)}: the belt starts "
                f"in {profile.countdown_s:g} s",
            )
        elif phase.walk is not walk:
            incline = steps[-1].incline_pct if steps else 0.0
            ramp_down(None, incline)
            if profile.retro_mode == "face-away":
                add(
                    StepKind.TURN_AROUND,
                    to_us(max(profile.turn_around_s, profile.reversal_standstill_s)),
                    phase.walk,
                    0.0,
                    belt=BeltDirection.FORWARD,
                    cue=f"Belt stopped. Turn around to {_walk_words(phase.walk, profile)}",
                    incline=incline,
                )
            else:
                add(
                    StepKind.STANDSTILL,
                    to_us(profile.reversal_standstill_s),
                    walk,
                    0.0,
                    cue="Belt stopped: hold the rails, it changes direction next",
                    incline=incline,
                )
            add(
                StepKind.COUNTDOWN,
                countdown,
                phase.walk,
                0.0,
                cue=f"The belt starts {belt.value} in {profile.countdown_s:g} s: "
                f"{_walk_words(phase.walk, profile)}",
                incline=incline,
            )
        walk = phase.walk
        delta = abs(phase.speed_kmh - speed)
        slope = accel if phase.ramp_s <= 0 or delta == 0 else min(accel, delta / phase.ramp_s)
        add(
            StepKind.PHASE,
            phase.duration_us,
            phase.walk,
            phase.speed_kmh,
            slope=slope,
            incline=phase.incline_pct,
            cue=phase.cue,
            phase=phase,
        )
    if walk is not None:
        ramp_down("Slowing to a stop", steps[-1].incline_pct if steps else 0.0)
    return steps


def build_timeline(
    program: Program, profile: DeviceProfile, parameters: Mapping[str, float] | None = None
) -> Timeline:
    params = resolve_parameters(program, parameters)
    phases = instances(program, params)
    return Timeline(
        program=program,
        profile=profile,
        parameters=params,
        instances=tuple(phases),
        steps=tuple(expand_steps(phases, profile)),
    )
