"""Build the configured driver. `sim` is the simulated Woodway on an in-process pty."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from treadctl.config.models import DeviceConfig
from treadctl.drivers.base import Driver
from treadctl.drivers.trackmaster import TrackmasterDriver, WoodwayDriver
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill

_SERIAL_DRIVERS: dict[str, type[TrackmasterDriver]] = {
    "trackmaster": TrackmasterDriver,
    "woodway": WoodwayDriver,
}


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
