"""A controller in its own process, for the test that kills it: python controller_proc.py PORT."""

from __future__ import annotations

import asyncio
import sys

from treadctl import logs
from treadctl.control.controller import Controller
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.trackmaster import WoodwayDriver


async def main(port: str) -> None:
    logs.configure("ERROR")
    caps = WoodwayDriver.capabilities
    rules = SafetyRules(
        speed_resolution_kmh=caps.speed_resolution_kmh, max_accel_mps2=0.5, estop_interlock_s=0.1
    )
    async with WoodwayDriver(port, poll_interval_s=0.1) as driver:
        controller = Controller(
            driver, profile=DeviceProfile("woodway", caps), rules=rules, programs={}
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(controller.run(), name="controller")
            await controller.ready.wait()
            await asyncio.sleep(0.2)
            result = await controller.execute(c.ManualSet(1.5, WalkDirection.BACKWARD))
            print("started" if result.ok else f"refused {result}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
