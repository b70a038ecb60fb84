"""`treadctl run`: settings → driver → controller → MQTT, one TaskGroup, a stopped belt at the end.

SIGTERM or SIGINT asks for a controlled stop of the belt (bounded in time, then an emergency
stop), publishes `offline` and returns 0. Any task failing ends the group; the controller's
`finally` stops the belt and the error propagates (exit 1, so systemd restarts the daemon, which
commands a stop at start-up and resumes nothing).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import structlog

from treadctl import __version__
from treadctl.config.models import Settings
from treadctl.control.controller import Controller
from treadctl.core import commands as cmd
from treadctl.core.state import Mode
from treadctl.devices import device_profile, open_device, safety_rules
from treadctl.mqtt.bridge import MqttBridge
from treadctl.programs.library import ProgramLibrary
from treadctl.sim.physics import BeltPhysics

log = structlog.get_logger(__name__)

SHUTDOWN_STOP_S = 15.0  # a controlled stop from the 6.5 km/h backward ceiling takes ~12 s


class Shutdown(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the TaskGroup to end it once the belt is stopped."""


async def _stop_belt(controller: Controller, timeout_s: float) -> None:
    """A controlled stop; an emergency stop if it does not finish in time."""
    if controller.mode in (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING):
        await controller.execute(cmd.Stop())
        try:
            async with asyncio.timeout(timeout_s):
                while controller.mode is Mode.STOPPING:  # noqa: ASYNC110 - the mode has no event
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning("controlled stop took too long; emergency stop")
            await controller.emergency_stop(detail="shutdown: controlled stop timed out")


async def run_daemon(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    time_scale: float = 1.0,
    sim_belt: BeltPhysics | None = None,
    on_ready: Callable[[Controller, MqttBridge], None] | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT); the belt is stopped on every way out."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    library = ProgramLibrary(settings.programs.directory)
    for error in library.errors:
        log.warning("program not loaded", error=error)
    try:
        async with open_device(settings.device, sim_belt=sim_belt) as driver:
            controller = Controller(
                driver,
                profile=device_profile(settings),
                rules=safety_rules(settings),
                programs={name: entry.program for name, entry in library.entries.items()},
                time_scale=time_scale,
            )
            bridge = MqttBridge(
                settings, controller, programs=library.names, model=driver.name, version=__version__
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(controller.run(), name="treadctl.controller")
                    tg.create_task(bridge.run(), name="treadctl.mqtt")
                    await controller.ready.wait()
                    log.info("treadctl running", device=settings.device.id, driver=driver.name)
                    if on_ready is not None:
                        on_ready(controller, bridge)
                    await stop.wait()
                    log.info("shutting down: stopping the belt")
                    await _stop_belt(controller, SHUTDOWN_STOP_S)
                    raise Shutdown  # noqa: TRY301 - ends the TaskGroup, caught just below
            except* Shutdown:
                pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
