"""Types shared by drivers, the simulator and the controller: directions, capabilities, status."""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass


class BeltDirection(enum.StrEnum):
    """Which way the belt's top surface moves, seen from the console."""

    FORWARD = "forward"  # normal walking towards the console
    REVERSE = "reverse"


class WalkDirection(enum.StrEnum):
    """Which way the person walks on the belt (programs speak in these)."""

    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a driver's treadmill can do, in treadctl units (km/h, %)."""

    speed_max_kmh: float
    speed_resolution_kmh: float
    # The slowest non-zero speed the treadmill takes, a whole number of wire steps (one step when
    # it takes any). Ramps jump from 0 to it and from it to 0, never through slower speeds.
    speed_min_kmh: float
    incline_min_pct: float
    incline_max_pct: float
    incline_step_pct: float
    reverse: bool
    reports_actual_speed: bool
    # The treadmill tells when it stopped the belt itself (stop button, safety key, own watchdog).
    reports_safety_stop: bool
    # Hardware watchdog: the belt stops if the host is silent this long (None: the device has none).
    watchdog_s: float | None
    # The longest gap between polls that keeps the link (and any watchdog) alive.
    max_poll_interval_s: float


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One reading of the treadmill."""

    running: bool
    belt: BeltDirection
    speed_kmh: float  # actual (measured) belt speed magnitude
    incline_pct: float
    watchdog_armed: bool
    # The treadmill stopped the belt although the host had started it and not stopped it.
    safety_stop: bool


def whole_steps_at_least(value_kmh: float, step_kmh: float) -> float:
    """The slowest whole number of wire steps (at least one) not below `value_kmh`: a minimum
    speed rounded up, so that the treadmill is never sent less than it takes."""
    steps = max(1, math.ceil(value_kmh / step_kmh - 1e-6))
    return steps * step_kmh


def with_min_speed(caps: Capabilities, min_speed_kmh: float | None) -> Capabilities:
    """`caps` with a configured minimum speed (device.min_speed_kmh); None keeps the driver's."""
    if min_speed_kmh is None:
        return caps
    low = whole_steps_at_least(min_speed_kmh, caps.speed_resolution_kmh)
    return dataclasses.replace(caps, speed_min_kmh=low)
