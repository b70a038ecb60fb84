"""`treadctl demo`: the simulated treadmill driven through the real driver, no set-up needed.

Today (foundation) it starts the simulated Woodway on a pty, ramps the belt in reverse to a slow
backward-walking speed at the configured software acceleration, holds it, ramps down and stops,
printing the belt as the driver reads it back. Programs, MQTT and the recorder join later.
"""

from __future__ import annotations

import asyncio
import sys

from treadctl.config.models import Settings
from treadctl.core import units
from treadctl.core.device import BeltDirection
from treadctl.devices import open_device
from treadctl.drivers.base import Driver

STEP_S = 0.2


async def _ramp(driver: Driver, start: float, end: float, accel_mps2: float) -> None:
    step = units.accel_kmh_per_s(accel_mps2) * STEP_S
    speed = start
    while abs(end - speed) > 1e-9:
        speed = min(end, speed + step) if end > speed else max(end, speed - step)
        await driver.set_speed(speed, BeltDirection.REVERSE)
        await asyncio.sleep(STEP_S)


async def _report(driver: Driver) -> None:
    while True:
        await asyncio.sleep(0.5)
        status = await driver.read_status()
        print(
            f"  belt {'running' if status.running else 'stopped'} {status.belt:<7} "
            f"{status.speed_kmh:4.2f} km/h, watchdog {'armed' if status.watchdog_armed else 'off'}",
            flush=True,
        )


async def run(settings: Settings, hold_s: float = 5.0) -> int:
    target = min(2.0, settings.limits.max_speed_backward_kmh)
    accel = settings.limits.max_accel_mps2
    print(
        f"treadctl demo: simulated Woodway treadmill, reverse belt to {target} km/h at {accel} m/s²"
    )
    async with open_device(settings.device.model_copy(update={"driver": "sim"})) as driver:
        try:
            async with asyncio.TaskGroup() as tg:
                keepalive = tg.create_task(driver.keepalive(), name="treadctl.demo.keepalive")
                report = tg.create_task(_report(driver), name="treadctl.demo.report")
                await driver.start()
                await driver.set_speed(settings.limits.start_speed_kmh, BeltDirection.REVERSE)
                await _ramp(driver, settings.limits.start_speed_kmh, target, accel)
                await asyncio.sleep(hold_s)
                await _ramp(driver, target, 0.0, accel)
                await driver.stop()
                await asyncio.sleep(1.0)
                keepalive.cancel()
                report.cancel()
        except BaseException:
            # Whatever went wrong (Ctrl-C included), the belt ends stopped.
            await driver.emergency_stop()
            raise
    print("demo finished: belt stopped", file=sys.stdout, flush=True)
    return 0
