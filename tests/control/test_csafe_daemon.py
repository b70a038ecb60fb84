"""The csafe driver against the simulated CSAFE console over a real pty, through the controller.

CSAFE cannot reverse: backward walking runs face-away (belt forward, the person turned round),
and a program that needs a reverse belt is refused before anything moves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from control.rig import Rig, driver_rig, with_rules
from control.wire_programs import PROGRAMS
from treadctl.config.models import DeviceConfig
from treadctl.core import commands as c
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile, RetroMode
from treadctl.devices import build_driver, capabilities_of
from treadctl.drivers.base import Driver
from treadctl.drivers.csafe_codec import Cmd, Command, Request, Unit, set_speed
from treadctl.sim.physics import StopCause

FWD, BACK = WalkDirection.FORWARD, WalkDirection.BACKWARD
RULES = with_rules(speed_resolution_kmh=0.1)
STOP = Request((set_speed(0, Unit.KMH_TENTHS), Command(Cmd.GO_IDLE)))


def make_driver(port: str) -> Driver:
    return build_driver(DeviceConfig(driver="csafe", port=port, poll_interval_s=0.1))


def profile(retro_mode: RetroMode = "face-away") -> DeviceProfile:
    return DeviceProfile(
        "csafe",
        capabilities_of(DeviceConfig(driver="csafe", port="unused")),
        retro_mode=retro_mode,
        countdown_s=1.0,
        turn_around_s=2.0,
    )


@asynccontextmanager
async def console(
    retro_mode: RetroMode = "face-away", link: Path | None = None
) -> AsyncIterator[Rig]:
    async with driver_rig(
        "csafe", make_driver, profile(retro_mode), RULES, link=link, programs=PROGRAMS
    ) as r:
        yield r


def requests_since(r: Rig, t: float) -> list[Request]:
    return [x.request for x in r.sim.wire.requests if x.at >= t and isinstance(x.request, Request)]


def commanded_speeds(r: Rig) -> list[int]:
    return [
        int.from_bytes(cmd.data[:2], "little")
        for req in requests_since(r, 0)
        for cmd in req.commands
        if cmd.cmd == Cmd.SET_SPEED
    ]


async def test_a_backward_program_runs_face_away_with_the_belt_forward() -> None:
    async with console() as r:
        await r.program_to_end("retro-short")
        assert r.phase_directions() == [
            ("forward", "forward"),
            ("backward", "forward"),  # walking backward on a belt that runs forward
        ]
        assert any(e.type == "cue" and "turn" in str(e.details["text"]).lower() for e in r.events)
        backward = [s for s in r.snapshots if s.target.walk is BACK and s.actual.speed_kmh > 0.8]
        assert backward, "the belt never ran during the backward phase"
        assert all(s.actual.belt is BeltDirection.FORWARD for s in backward)
        assert min(v for _, v in r.trace) >= 0  # the belt never ran in reverse
        assert max(commanded_speeds(r)) == 10  # 1.0 km/h in 0.1 km/h: the console's units
        ended = r.finished()
        assert ended["ended"] == "finished"
        assert ended["backward_s"] > 2.0
        assert r.sim.protocol.describe() == "console IDLE"


async def test_a_program_that_needs_a_reverse_belt_is_refused() -> None:
    async with console("reverse-belt") as r:
        res = await r.run(c.Start("retro-short"))
        assert (res.ok, res.code) == (False, "program_invalid")
        assert "cannot reverse" in res.message
        assert 'retro_mode = "face-away"' in res.message
        res = await r.run(c.ManualSet(1.0, BACK))
        assert (res.ok, res.code) == (False, "not_supported")
        await asyncio.sleep(0.3)
        sent = [cmd.cmd for req in requests_since(r, 0) for cmd in req.commands]
        assert Cmd.GO_IN_USE not in sent  # nothing ever started the belt
        assert r.sim.belt.still


async def test_estop_puts_the_stop_frame_on_the_wire_first() -> None:
    async with console() as r:
        assert (await r.run(c.ManualSet(2.0, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.5, 10, "at speed")
        t0 = time.monotonic()
        await r.controller.emergency_stop()
        after = requests_since(r, t0)
        # A status poll written just before the call may reach the console after t0; nothing
        # written after the call comes before the stop.
        first = after.index(STOP)
        assert first <= 1
        assert all(cmd.cmd == Cmd.GET_STATUS for req in after[:first] for cmd in req.commands)
        assert bytes.fromhex("F1 25 03 00 00 31 82 95 F2") in r.sim.wire.rx
        await r.until(lambda: r.sim.belt.still, 3, "belt still")
        assert r.controller.mode is Mode.ESTOP
        assert (await r.run(c.ManualSet(1.0, FWD))).code == "estop_latched"


async def test_silence_becomes_a_fault_within_a_second_and_the_console_is_told_to_stop() -> None:
    async with console() as r:
        t0 = await r.silenced_at_speed()
        await r.until(lambda: STOP in requests_since(r, t0), 1, "stop frame")
        await r.until(lambda: r.sim.belt.still, 3, "belt still")  # it still hears us
        fault = next(e for e in r.events if e.type == "fault")
        assert fault.details["cause"] == "link_lost"
        r.sim.faults.silent = False
        await r.until(lambda: "link_restored" in r.event_types(), 5)
        assert r.controller.mode is Mode.FAULT  # never resumes by itself


async def test_unplug_becomes_a_fault_within_a_second_and_replug_stops_the_belt(
    tmp_path: Path,
) -> None:
    async with console(link=tmp_path / "console") as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed")
        r.sim.unplug()
        t0 = time.monotonic()
        await r.mode(Mode.FAULT, 2)
        assert time.monotonic() - t0 < 1.0
        # CSAFE has no watchdog: a console cut off from the host keeps the belt going
        await asyncio.sleep(1.0)
        assert r.sim.belt.running
        r.sim.replug()
        await r.until(lambda: "link_restored" in r.event_types(), 5)
        await r.until(lambda: r.sim.belt.still, 5, "belt stopped at reconnect")
        assert r.sim.belt.stop_cause is StopCause.COMMAND
        await asyncio.sleep(0.3)
        assert (await r.run(c.Reset())).ok


async def test_the_console_leaving_in_use_latches_an_estop() -> None:
    async with console() as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed")
        r.sim.pull_key()
        await r.mode(Mode.ESTOP, 2)
        assert (await r.estop_cause()) == "treadmill_stop"
        assert r.sim.belt.stop_cause is StopCause.SAFETY_KEY
