"""What a reload (SIGHUP) changes, decided without I/O.

Programs, the telemetry rate and the log level apply at once; limits and safety rules once the
belt is idle (a rule must not change under a running session); `device`, `mqtt`, `storage` and
`estop_inputs` are kept until a restart (they are open connections and files).
"""

from __future__ import annotations

from dataclasses import dataclass

from treadctl.config.models import Settings
from treadctl.core.state import Mode

RESTART_SECTIONS = ("device", "mqtt", "storage", "estop_inputs")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    now: Settings
    """The running settings with the new programs, telemetry and log level."""
    when_idle: Settings
    """`now` with the new limits and safety rules too."""
    needs_restart: tuple[str, ...]
    """The sections that changed but stay as they are until a restart."""


def plan_reload(running: Settings, new: Settings) -> ReloadPlan:
    now = running.model_copy(
        update={"telemetry": new.telemetry, "programs": new.programs, "log_level": new.log_level}
    )
    when_idle = now.model_copy(update={"limits": new.limits, "safety": new.safety})
    changed = tuple(s for s in RESTART_SECTIONS if getattr(new, s) != getattr(running, s))
    return ReloadPlan(now, when_idle, changed)


def limits_apply_now(mode: Mode | None) -> bool:
    """New limits wait for an idle belt; with no controller yet there is nothing to wait for."""
    return mode is None or mode is Mode.IDLE
