"""Build the configured driver. `sim` is the simulated Woodway on an in-process pty."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from treadctl.config.models import DeviceConfig, Settings
from treadctl.core.device import Capabilities
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.base import Driver
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill

_SERIAL_DRIVERS: dict[str, type[TrackmasterDriver]] = {
    "trackmaster": TrackmasterDriver,
    "woodway": WoodwayDriver,
}


def capabilities_of(driver: str) -> Capabilities:
    """A driver's capabilities without opening it (the sim driver is a simulated Woodway)."""
    return _SERIAL_DRIVERS["woodway" if driver == "sim" else driver].capabilities


def device_profile(settings: Settings) -> DeviceProfile:
    """What programs are validated against and expanded for on the configured device."""
    limits, safety = settings.limits, settings.safety
    return DeviceProfile(
        driver=settings.device.driver,
        capabilities=capabilities_of(settings.device.driver),
        retro_mode=settings.device.retro_mode,
        max_speed_forward_kmh=limits.max_speed_forward_kmh,
        max_speed_backward_kmh=limits.max_speed_backward_kmh,
        max_incline_forward_pct=limits.max_incline_forward_pct,
        max_incline_backward_pct=limits.max_incline_backward_pct,
        max_accel_mps2=limits.max_accel_mps2,
        reversal_standstill_s=safety.reversal_standstill_s,
        countdown_s=safety.reversal_countdown_s,
        turn_around_s=safety.turn_around_s,
        max_session_s=limits.max_session_s,
    )


def safety_rules(settings: Settings) -> SafetyRules:
    """The supervisor's numbers from `[limits]` and `[safety]` (already within the ceilings)."""
    limits, safety = settings.limits, settings.safety
    return SafetyRules(
        max_speed_forward_kmh=limits.max_speed_forward_kmh,
        max_speed_backward_kmh=limits.max_speed_backward_kmh,
        max_incline_forward_pct=limits.max_incline_forward_pct,
        max_incline_backward_pct=limits.max_incline_backward_pct,
        start_speed_kmh=limits.start_speed_kmh,
        max_accel_mps2=limits.max_accel_mps2,
        speed_resolution_kmh=capabilities_of(settings.device.driver).speed_resolution_kmh,
        reversal_standstill_s=safety.reversal_standstill_s,
        reversal_countdown_s=safety.reversal_countdown_s,
        estop_interlock_s=safety.estop_interlock_s,
        broker_loss_s=safety.broker_loss_s,
        broker_loss_continue=safety.broker_loss_action == "continue",
        heart_rate_max_bpm=safety.heart_rate_max_bpm,
        heart_rate_lost_s=safety.heart_rate_lost_s,
        deadman_s=safety.deadman_s,
        speed_mismatch_kmh=safety.speed_mismatch_kmh,
        speed_mismatch_grace_s=safety.speed_mismatch_grace_s,
        max_session_s=limits.max_session_s,
    )


@contextlib.asynccontextmanager
async def open_device(
    device: DeviceConfig, *, sim_belt: BeltPhysics | None = None
) -> AsyncIterator[Driver]:
    """The driver, open, with the belt commanded to stop; closed on exit."""
    if device.driver == "sim":
        # The same bytes as hardware: the Woodway driver talks to the simulator over a real pty.
        async with (
            SimulatedTreadmill("woodway", belt=sim_belt) as sim,
            WoodwayDriver(
                sim.path,
                poll_interval_s=device.poll_interval_s,
                response_timeout_s=device.response_timeout_s,
            ) as driver,
        ):
            yield driver
        return
    if device.port is None:  # config validation makes this unreachable; keep mypy honest
        raise ValueError("device.port is required")
    cls = _SERIAL_DRIVERS[device.driver]
    async with cls(
        device.port,
        baudrate=device.effective_baudrate,
        poll_interval_s=device.poll_interval_s,
        response_timeout_s=device.response_timeout_s,
    ) as driver:
        yield driver
