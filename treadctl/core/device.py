"""Types shared by drivers, the simulator and the controller: directions, capabilities, status."""

from __future__ import annotations

import enum
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
