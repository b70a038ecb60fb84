"""Shutdown: the belt stopped first (a controlled stop, bounded, then an emergency stop), and
everything after it bounded too, down to a last resort that exits."""

from __future__ import annotations

import asyncio
import logging
import os

import structlog

from treadctl.control.controller import Controller
from treadctl.core import commands as cmd
from treadctl.core.state import Mode
from treadctl.tasks import stacks

log = structlog.get_logger(__name__)

SHUTDOWN_STOP_S = 15.0  # a controlled stop from the 6.5 km/h backward ceiling takes ~12 s
# Once the belt is stopped: MQTT (`offline`, GOODBYE_S of it, then the disconnect) and the
# recorder get this long to end, cancelled again if they do not (a cancellation can be lost on
# Python 3.11, see treadctl/tasks.py); what still runs is logged and the shutdown goes on.
SHUTDOWN_TASKS_S = 5.0
# The last resort, which a correct shutdown never reaches: after the belt is stopped, the whole
# rest of the shutdown (the above, the controller, the database) gets this long, then the process
# logs where it hangs and exits with EXIT_SHUTDOWN_STUCK instead of leaving the unit "stopping".
SHUTDOWN_GRACE_S = 10.0
# Not 0: a shutdown that needed the last resort is a bug, and the exit status says so (systemd
# shows the unit failed; the tests, which expect 0 after SIGTERM, fail).
EXIT_SHUTDOWN_STUCK = 3


def shutdown_stuck() -> None:
    """The belt is stopped but the shutdown did not finish: say where it hangs, then exit."""
    log.error(
        "shutdown did not finish; exiting (the belt is stopped)", tasks=stacks(asyncio.all_tasks())
    )
    logging.shutdown()
    os._exit(EXIT_SHUTDOWN_STUCK)


class Shutdown(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the TaskGroup to end it once the belt is stopped."""


async def stop_belt(controller: Controller, timeout_s: float) -> None:
    """A controlled stop; an emergency stop if it does not finish in time."""
    if controller.mode in (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING):
        try:
            async with asyncio.timeout(timeout_s):  # the Stop's own answer included
                while controller.mode in (Mode.RUNNING, Mode.PAUSED):
                    result = await controller.execute(cmd.Stop())
                    if not result.ok:  # e.g. `busy` under a flood: never ignored
                        log.warning("shutdown stop refused; trying again", code=result.code)
                        await asyncio.sleep(0.05)
                while controller.mode is Mode.STOPPING:  # noqa: ASYNC110 - no mode event
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning("controlled stop took too long; emergency stop")
            await controller.emergency_stop(detail="shutdown: controlled stop timed out")
