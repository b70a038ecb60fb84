"""Check a program against a device before anything moves. Every problem names phase and limit."""

from __future__ import annotations

from collections.abc import Mapping

from treadctl.core.device import WalkDirection
from treadctl.core.program import Program, format_duration
from treadctl.core.timeline import (
    DeviceProfile,
    PhaseInstance,
    expand_steps,
    instances,
)


class ProgramInvalid(Exception):  # noqa: N818 - reads as "program invalid: …"
    """A program that must not run on this device; `problems` lists every reason."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"program {name} cannot run here:\n  " + "\n  ".join(problems))
        self.problems = problems


def _num(value: float) -> str:
    return f"{value:.1f}" if round(value, 1) == round(value, 6) else f"{value:.2f}"


def phase_problems(phase: PhaseInstance, profile: DeviceProfile) -> list[str]:
    caps = profile.capabilities
    out: list[str] = []
    cap, key = profile.speed_cap(phase.walk)
    if phase.speed_kmh > cap + 1e-9:
        out.append(f"{_num(phase.speed_kmh)} km/h exceeds {key} = {cap}")
    if phase.speed_kmh > caps.speed_max_kmh + 1e-9:
        out.append(
            f"{_num(phase.speed_kmh)} km/h exceeds the {profile.driver} driver's maximum "
            f"of {caps.speed_max_kmh:.1f} km/h"
        )
    if 0 < phase.speed_kmh < caps.speed_min_kmh - 1e-9:
        # The ramp would hold such a phase at 0: say so instead of a belt that never moves.
        out.append(
            f"{_num(phase.speed_kmh)} km/h is below the {profile.driver} treadmill's slowest "
            f"speed of {caps.speed_min_kmh:.2f} km/h (device.min_speed_kmh)"
        )
    icap, ikey = profile.incline_cap(phase.walk)
    if phase.incline_pct > icap + 1e-9:
        out.append(f"incline {_num(phase.incline_pct)} % exceeds {ikey} = {icap}")
    if phase.incline_pct > caps.incline_max_pct + 1e-9:
        out.append(
            f"incline {_num(phase.incline_pct)} % exceeds the {profile.driver} driver's "
            f"maximum of {caps.incline_max_pct} %"
        )
    if phase.incline_pct < caps.incline_min_pct - 1e-9:
        out.append(
            f"incline {_num(phase.incline_pct)} % is below the {profile.driver} driver's "
            f"minimum of {caps.incline_min_pct} %"
        )
    if (
        phase.walk is WalkDirection.BACKWARD
        and profile.retro_mode == "reverse-belt"
        and not caps.reverse
    ):
        out.append(
            'walking backward with device.retro_mode = "reverse-belt" needs a belt that runs in '
            f"reverse, and the {profile.driver} driver cannot reverse "
            '(use retro_mode = "face-away")'
        )
    return out


def check_program(
    program: Program, profile: DeviceProfile, parameters: Mapping[str, float] | None = None
) -> list[str]:
    """Every reason `program` must not run on `profile` with these parameters; [] when it may."""
    problems: list[str] = []
    given = dict(parameters or {})
    known = ", ".join(program.parameters) or "none"
    problems.extend(
        f"unknown parameter {name!r} (the program has: {known})"
        for name in sorted(set(given) - set(program.parameters))
    )
    values = {name: given.get(name, p.default) for name, p in program.parameters.items()}
    for name, value in values.items():
        p = program.parameters[name]
        if not p.min <= value <= p.max:
            problems.append(
                f"parameter {name} = {_num(value)} {p.unit} is outside {p.min}-{p.max} {p.unit}"
            )
    phases = instances(program, values)
    seen: set[tuple[int, str]] = set()
    for phase in phases:
        for message in phase_problems(phase, profile):
            if (phase.number, message) not in seen:
                seen.add((phase.number, message))
                problems.append(f"{phase.label}: {message}")
    steps = expand_steps(phases, profile)
    total_s = steps[-1].end_us / 1e6 if steps else 0.0
    if total_s > profile.max_session_s:
        problems.append(
            f"the expanded program takes {format_duration(total_s)}, which exceeds "
            f"limits.max_session_s = {profile.max_session_s:g}"
        )
    return problems


def validate_program(
    program: Program, profile: DeviceProfile, parameters: Mapping[str, float] | None = None
) -> None:
    """Raise ProgramInvalid listing every problem, or return when the program may run."""
    problems = check_program(program, profile, parameters)
    if problems:
        raise ProgramInvalid(program.name, problems)
