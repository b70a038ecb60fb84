"""What the explorer found on the fixed controller, kept as deterministic regressions."""

from __future__ import annotations

import asyncio

from explorer.campaign import quiet_logs
from explorer.driver import Exchange, Op, ScriptedDriver
from explorer.vloop import VirtualTimeLoop
from explorer.world import CAPS, programs
from treadctl.control.controller import Controller
from treadctl.core import commands as cmd
from treadctl.core.commands import Result
from treadctl.core.safety import SafetyRules
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile, build_timeline

PROGRAM = "alghadir2019-knee-oa"
SCALE = 30.0
PROFILE = DeviceProfile("woodway", CAPS, countdown_s=0.0)


class SlowSpeedLine:
    """A line whose speed exchanges can be made slow, so a command lands at a program's end
    before the tick that notices it."""

    def __init__(self) -> None:
        self.speed_delay = 0.001

    def call(self, op: Op, speed: float | None) -> None:
        pass

    def exchange(self, op: Op, link_up: bool) -> Exchange:
        return Exchange(self.speed_delay if op is Op.SET_SPEED else 0.001)

    def refused_halted(self, op: Op) -> None:
        pass


async def _pause_near_the_end(offset: float) -> tuple[Result, Mode]:
    loop = asyncio.get_running_loop()
    line = SlowSpeedLine()
    driver = ScriptedDriver(line, loop.time)
    await driver.open()
    rules = SafetyRules(
        speed_resolution_kmh=CAPS.speed_resolution_kmh,
        estop_interlock_s=0.3,
        reversal_countdown_s=0.0,
    )
    controller = Controller(
        driver,
        profile=PROFILE,
        rules=rules,
        programs=programs(),
        clock=loop.time,
        wall=lambda: 1.7e9 + loop.time() * 1000,
        time_scale=SCALE,
    )
    task = loop.create_task(controller.run())
    await asyncio.sleep(0.5)
    assert (await controller.execute(cmd.Start(PROGRAM))).ok
    total = build_timeline(programs()[PROGRAM], PROFILE, {}).total_s
    end = loop.time() + total / SCALE
    await asyncio.sleep(end - loop.time() - 0.5)
    line.speed_delay = 0.3
    await asyncio.sleep(0.5 + offset)
    answer = await controller.execute(cmd.Pause())
    mode = controller.mode
    task.cancel()
    await asyncio.wait([task])
    return answer, mode


def test_a_pause_as_the_program_ends_is_not_answered_paused() -> None:
    """Seed 202913: a Pause drained at the instant the program finished was answered `paused`
    while the mode was already `stopping`."""
    seen: set[bool] = set()
    with quiet_logs():
        for step in range(30):
            loop = VirtualTimeLoop()
            try:
                answer, mode = loop.run_until_complete(_pause_near_the_end(step / 50 - 0.3))
            finally:
                loop.close()
            seen.add(answer.ok)
            if answer.ok:
                assert mode is Mode.PAUSED
            else:
                assert answer.code == "not_allowed_in_mode"
                assert mode is Mode.STOPPING
    assert seen == {True, False}  # both sides of the program's end were hit
