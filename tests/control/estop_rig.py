"""Dedicated e-stop inputs wired to a rig's controller as the daemon wires them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from control.rig import Rig
from teardown import finish
from treadctl.config.models import EStopInputConfig
from treadctl.control.start_gate import StartRule
from treadctl.estop.inputs import HeartbeatInput, ModemLinesInput, make_input
from treadctl.sim.estop_box import SimulatedButtonBox


def box_config(link: Path, **extra: Any) -> EStopInputConfig:
    return EStopInputConfig(name="box", kind="heartbeat", port=str(link), reconnect_s=0.1, **extra)


@contextlib.asynccontextmanager
async def attached(
    r: Rig, item: HeartbeatInput | ModemLinesInput
) -> AsyncIterator[HeartbeatInput | ModemLinesInput]:
    """Wire an input to the rig's controller as the daemon does, for the test's duration."""
    r.controller.estop_input(item.health(), trip=False)
    task = asyncio.create_task(item.run(), name="test.estop_input")
    try:
        yield item
    finally:
        await finish(task, "the e-stop input")


def wired(r: Rig, config: EStopInputConfig) -> HeartbeatInput | ModemLinesInput:
    return make_input(
        config,
        lambda health, trip: r.controller.estop_input(health, trip=trip),
        confirm=r.controller.confirm_start,  # heard only from a box with start_button = true
    )


async def healthy(r: Rig, item: HeartbeatInput | ModemLinesInput, timeout: float = 3.0) -> None:
    await r.until(lambda: item.health().healthy, timeout, "input healthy")


@contextlib.asynccontextmanager
async def start_button_box(
    r: Rig, link: Path, rule: StartRule | None
) -> AsyncIterator[SimulatedButtonBox]:
    """A simulated box with a start button on `link`, wired and healthy, and `rule` in force
    (None: the controller's rule as it is)."""
    async with (
        SimulatedButtonBox(link=link) as box,
        attached(r, wired(r, box_config(link, start_button=True))) as item,
    ):
        if rule is not None:
            r.controller.set_start_rule(rule)
        await healthy(r, item)
        yield box
