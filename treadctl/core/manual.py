"""Check a manual session's target against the rules and the device, before anything moves."""

from __future__ import annotations

from treadctl.core.commands import ManualSet
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile


def manual_refusal(
    command: ManualSet, rules: SafetyRules, profile: DeviceProfile
) -> tuple[str, str] | None:
    """Why `command` may not run, as (code, message); None when it may."""
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
