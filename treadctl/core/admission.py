"""Whether a command may act now: the refusals the controller answers before anything moves.

Pure: each check takes what it judges and returns (code, message) for a refusal, None when the
command may go ahead. The codes are docs/mqtt.md's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from treadctl.core import person
from treadctl.core.commands import ManualSet
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.person import PersonLimits
from treadctl.core.program import Program
from treadctl.core.safety import SafetyRules, SafetySupervisor
from treadctl.core.session import TherapySession
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile
from treadctl.core.validation import check_program

Refusal = tuple[str, str]

HEART_RATE_BPM = (20, 250)  # plausible readings; anything else is a broken sensor or a typo


def heart_rate_refusal(bpm: int) -> Refusal | None:
    low, high = HEART_RATE_BPM
    if not low <= bpm <= high:
        return "out_of_range", f"heart rate {bpm} bpm is outside {low}-{high}"
    return None


def not_in_mode(what: str, mode: Mode) -> Refusal:
    return "not_allowed_in_mode", f"cannot {what} while {mode}"


def start_refusal(
    mode: Mode,
    fault: str | None,
    supervisor: SafetySupervisor,
    now: float,
    *,
    heart_rate_limit: bool = False,
) -> Refusal | None:
    """Whether a session may start now, whatever it is (`heart_rate_limit`: a person's own)."""
    if (refusal := supervisor.input_refusal()) is not None:
        return refusal  # the input first: reset would be refused too
    if mode is Mode.ESTOP:
        return "estop_latched", "emergency stop latched: send reset when the belt is still"
    if mode is Mode.FAULT:
        return "not_allowed_in_mode", f"device fault ({fault}): reset first"
    if mode is not Mode.IDLE:
        return not_in_mode("start", mode)
    return supervisor.start_refusal(now, heart_rate_limit=heart_rate_limit)


def program_refusal(
    programs: Mapping[str, Program],
    name: str,
    profile: DeviceProfile,
    parameters: Mapping[str, Any],
) -> Refusal | None:
    """What is wrong with starting program `name` whatever the time (said before the mode)."""
    program = programs.get(name)
    if program is None:
        known = ", ".join(sorted(programs))
        return "unknown_program", f"unknown program {name!r} (known: {known})"
    if problems := check_program(program, profile, parameters):
        return "program_invalid", "; ".join(problems)
    return None


def manual_refusal(
    command: ManualSet, rules: SafetyRules, profile: DeviceProfile
) -> Refusal | None:
    """Whether a manual target is within the rules and the device (checked before a start)."""
    caps = profile.capabilities
    cap = rules.speed_cap(command.walk)
    key = (
        "limits.max_speed_backward_kmh"
        if command.walk is WalkDirection.BACKWARD
        else "limits.max_speed_forward_kmh"
    )
    if not 0 <= command.speed_kmh <= cap:
        return "out_of_range", f"{command.speed_kmh} km/h is outside 0-{cap} km/h ({key})"
    low = max(rules.speed_min_kmh, caps.speed_min_kmh)
    if 0 < command.speed_kmh < low - 1e-9:
        message = (
            f"{command.speed_kmh} km/h is below the treadmill's slowest speed of "
            f"{low:.2f} km/h (device.min_speed_kmh); 0 stops the belt"
        )
        return "out_of_range", message
    icap = min(rules.incline_cap(command.walk), caps.incline_max_pct)
    if not caps.incline_min_pct <= command.incline_pct <= icap:
        return (
            "out_of_range",
            f"incline {command.incline_pct} % is outside {caps.incline_min_pct}-{icap} %",
        )
    if profile.belt_for(command.walk) is BeltDirection.REVERSE and not caps.reverse:
        return "not_supported", f"the {profile.driver} driver cannot run the belt in reverse"
    return None


def person_set_refusal(
    command: ManualSet, running: TherapySession | None, rules: SafetyRules
) -> tuple[Refusal | None, PersonLimits | None]:
    """A `set`'s person limits (a running manual session's, only ever tightened by the set),
    or why the set is refused: another person than the session's, a target beyond a limit."""
    if running is not None and command.person not in (None, running.person):
        who = running.person or "nobody"
        return ("not_allowed_in_mode", f"a session for {who} is running"), None
    limits = command.limits
    if running is not None:
        limits = running.limits if limits is None else person.combined(running.limits, limits)
    if limits is not None and (
        refusal := person.target_refusal(
            command.walk,
            command.speed_kmh,
            command.incline_pct,
            limits=limits,
            rules=rules,
            what="target",
        )
    ):
        return refusal, None
    return None, limits
