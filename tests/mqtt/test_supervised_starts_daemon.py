"""The daemon wires supervised starts from its configuration: `auto` with a box that has a start
button holds a start until the box's GO (daemon/wiring.py: the rule, the GO callback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mqtt.brokers import Broker
from mqtt.daemon_task import daemon_running
from mqtt.harness import settings_for
from treadctl.config.models import EStopInputConfig
from treadctl.control.controller import Controller
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.state import Mode
from treadctl.sim.estop_box import SimulatedButtonBox


def mode(controller: Controller) -> Mode:
    return controller.mode  # read through a call: mypy would keep the narrowed mode otherwise


async def test_the_daemon_holds_a_start_until_go_on_its_box(broker: Broker, tmp_path: Path) -> None:
    link = tmp_path / "box"
    entry = EStopInputConfig(
        name="box", kind="heartbeat", port=str(link), reconnect_s=0.1, start_button=True
    )
    settings = settings_for(broker).model_copy(update={"estop_inputs": (entry,)})
    async with daemon_running(settings) as controller, SimulatedButtonBox(link=link) as box:
        async with asyncio.timeout(5):  # the box healthy and the power-up interlock over
            while True:
                answer = await controller.execute(c.ManualSet(1.0, WalkDirection.FORWARD))
                if answer.ok:
                    break
                await asyncio.sleep(0.1)
        assert "awaiting confirmation" in answer.message
        snap = controller.last_snapshot
        assert snap is not None
        assert snap.state_dict()["awaiting"]["inputs"] == ["box"]
        assert mode(controller) is Mode.IDLE
        box.go()
        async with asyncio.timeout(3):
            while mode(controller) is not Mode.RUNNING:
                await asyncio.sleep(0.02)
