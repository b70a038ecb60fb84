"""Build the configured driver. `sim` is the simulated Woodway on an in-process pty."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from treadctl.config.models import DeviceConfig, Settings
from treadctl.core.device import Capabilities, with_min_speed
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.base import Driver
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver
from treadctl.sim.physics import BeltPhysics

# The CSAFE and Delta VFD drivers (pymodbus) and the simulator are imported when configured:
# a daemon loads only its own driver, which keeps start-up short (docs/performance.md).


def _trackmaster(device: DeviceConfig, port: str) -> Driver:
    cls = WoodwayDriver if device.driver == "woodway" else TrackmasterDriver
    return cls(
        port,
        baudrate=device.effective_baudrate,
        poll_interval_s=device.poll_interval_s,
        response_timeout_s=device.response_timeout_s,
        belt_states=device.trackmaster.running_by_byte,
        min_speed_kmh=device.min_speed_kmh,
    )


def _csafe(device: DeviceConfig, port: str) -> Driver:
    from treadctl.drivers.csafe import CsafeDriver  # noqa: PLC0415 - see the imports

    return CsafeDriver(
        port,
        units=device.csafe.units,
        baudrate=device.effective_baudrate,
        poll_interval_s=device.poll_interval_s,
        response_timeout_s=device.response_timeout_s,
        min_speed_kmh=device.min_speed_kmh,
    )


def _delta_vfd(device: DeviceConfig, port: str) -> Driver:
    from treadctl.drivers.delta_vfd import DeltaVfdDriver  # noqa: PLC0415 - see the imports

    vfd = device.vfd
    kmh_per_hz = vfd.effective_kmh_per_hz
    if kmh_per_hz is None:  # config validation makes this unreachable; keep mypy honest
        raise ValueError("device.vfd.kmh_per_hz is required")
    return DeltaVfdDriver(
        port,
        kmh_per_hz=kmh_per_hz,
        max_hz=vfd.max_hz,
        unit_id=vfd.unit_id,
        parity=vfd.parity,
        stopbits=vfd.stopbits,
        accept_no_comm_watchdog=vfd.accept_no_comm_watchdog,
        baudrate=device.effective_baudrate,
        poll_interval_s=device.poll_interval_s,
        response_timeout_s=device.response_timeout_s,
        min_speed_kmh=device.min_speed_kmh,
    )


_SERIAL_DRIVERS: dict[str, Callable[[DeviceConfig, str], Driver]] = {
    "trackmaster": _trackmaster,
    "woodway": _trackmaster,
    "csafe": _csafe,
    "delta-vfd": _delta_vfd,
}


def capabilities_of(device: DeviceConfig | str) -> Capabilities:
    """A driver's capabilities without opening it (the sim driver is a simulated Woodway).

    The csafe and delta-vfd capabilities depend on `[device.csafe]`/`[device.vfd]`; by name
    alone csafe gets its defaults and delta-vfd cannot be answered.
    """
    config = device if isinstance(device, DeviceConfig) else None
    name = device.driver if isinstance(device, DeviceConfig) else device
    low = config.min_speed_kmh if config else None
    match name:
        case "sim" | "woodway":
            return with_min_speed(WoodwayDriver.capabilities, low)
        case "trackmaster":
            return with_min_speed(TrackmasterDriver.capabilities, low)
        case "csafe":
            from treadctl.drivers import csafe  # noqa: PLC0415 - see the imports

            return csafe.capabilities(config.csafe.units if config else "kmh", low)
        case "delta-vfd" if config is not None and config.vfd.effective_kmh_per_hz:
            from treadctl.drivers import delta_vfd  # noqa: PLC0415 - see the imports

            factor = config.vfd.effective_kmh_per_hz
            return delta_vfd.capabilities(factor, config.vfd.max_hz, low)
    raise ValueError(f"no capabilities for driver {name!r} without its configuration")


def device_profile(settings: Settings) -> DeviceProfile:
    """What programs are validated against and expanded for on the configured device."""
    limits, safety = settings.limits, settings.safety
    return DeviceProfile(
        driver=settings.device.driver,
        capabilities=capabilities_of(settings.device),
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
        speed_resolution_kmh=capabilities_of(settings.device).speed_resolution_kmh,
        speed_min_kmh=capabilities_of(settings.device).speed_min_kmh,
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
        from treadctl.sim.pty_server import SimulatedTreadmill  # noqa: PLC0415 - see the imports

        # The same bytes as hardware: the Woodway driver talks to the simulator over a real pty.
        async with (
            SimulatedTreadmill("woodway", belt=sim_belt) as sim,
            WoodwayDriver(
                sim.path,
                poll_interval_s=device.poll_interval_s,
                response_timeout_s=device.response_timeout_s,
                belt_states=device.trackmaster.running_by_byte,
                min_speed_kmh=device.min_speed_kmh,
            ) as driver,
        ):
            yield driver
        return
    async with build_driver(device) as driver:
        yield driver


def build_driver(device: DeviceConfig) -> Driver:
    """The configured serial driver, not opened yet (not for the sim driver)."""
    if device.port is None or device.driver not in _SERIAL_DRIVERS:
        raise ValueError(f"driver {device.driver!r} needs device.port and a serial driver")
    return _SERIAL_DRIVERS[device.driver](device, device.port)
