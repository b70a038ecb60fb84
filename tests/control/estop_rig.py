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
from treadctl.estop.inputs import HeartbeatInput, ModemLinesInput, make_input


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
    return make_input(config, lambda health, trip: r.controller.estop_input(health, trip=trip))


async def healthy(r: Rig, item: HeartbeatInput | ModemLinesInput, timeout: float = 3.0) -> None:
    await r.until(lambda: item.health().healthy, timeout, "input healthy")
