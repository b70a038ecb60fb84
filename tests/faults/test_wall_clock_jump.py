"""A wall-clock jump mid-program: the timing on the wire is unaffected.

The controller schedules on the monotonic clock; the wall clock only stamps events and samples.
Changing the system clock of a shared machine is not safe, so this one runs in-process: the
real controller and Woodway driver on a pty to the simulated treadmill, with an injected wall
clock (`Controller(wall=...)`) that jumps forward 1 h and then back 2 h mid-program. Each phase
changes the incline, so every phase change is a set-elevation command the treadmill reads: its
arrival on the treadmill's side of the pty is compared with the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from control.rig import CAPS, FAST
from treadctl.control.controller import Controller
from treadctl.core import commands as cmd
from treadctl.core.program import Program
from treadctl.core.state import Event, Mode, Snapshot
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op, Request, decode_digits
from treadctl.sim.pty_server import SimulatedTreadmill

HOUR = 3600.0
PHASE_S = 1.0
INCLINES = (1.0, 0.0, 1.0, 0.0, 1.0)
PROGRAM = Program.model_validate(
    {
        "name": "clock-jump",
        "title": "Incline steps (wall-clock test)",
        "phases": [
            {"name": "settle", "duration": 2, "walk": "backward", "speed_kmh": 1.0},
            *(
                {
                    "name": f"step{i}",
                    "duration": PHASE_S,
                    "walk": "backward",
                    "speed_kmh": 1.0,
                    "incline_pct": pct,
                }
                for i, pct in enumerate(INCLINES)
            ),
        ],
    }
)


async def _jump(offset: list[float], started: float) -> None:
    """+1 h half-way through the first step, -2 h (to -1 h) half-way through the third."""
    await asyncio.sleep(max(0.0, started + 2.5 - time.monotonic()))
    offset[0] = HOUR
    await asyncio.sleep(max(0.0, started + 4.5 - time.monotonic()))
    offset[0] = -HOUR


async def test_a_wall_clock_jump_leaves_the_phase_changes_on_the_wire_on_time() -> None:
    offset = [0.0]
    events: list[Event] = []

    def wall() -> float:
        return time.time() + offset[0]

    def record(item: Snapshot | Event) -> None:
        if isinstance(item, Event):
            events.append(item)

    async with SimulatedTreadmill("woodway") as sim:
        driver = WoodwayDriver(sim.path, poll_interval_s=0.1)
        await driver.open()
        profile = DeviceProfile("woodway", CAPS, max_accel_mps2=0.15, countdown_s=0.0)
        controller = Controller(
            driver,
            profile=profile,
            rules=FAST,
            programs={PROGRAM.name: PROGRAM},
            tick_s=0.1,
            wall=wall,
        )
        controller.add_listener(record)
        task = asyncio.create_task(controller.run(), name="test.controller")
        jumper: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(controller.ready.wait(), 5)
            await asyncio.sleep(FAST.estop_interlock_s + 0.05)
            assert (await controller.execute(cmd.Start(PROGRAM.name))).ok
            started = time.monotonic()
            jumper = asyncio.create_task(_jump(offset, started), name="test.jump")
            async with asyncio.timeout(20):
                while not any(e.type == "session_finished" for e in events):
                    await asyncio.sleep(0.05)
            async with asyncio.timeout(15):
                while not (controller.mode is Mode.IDLE and sim.belt.still):
                    await asyncio.sleep(0.05)
        finally:
            for t in (jumper, task):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
            await driver.close()

    # the jumps happened, and the stamps show them
    assert offset[0] == -HOUR
    stamps = [e.ts for e in events if e.type == "phase_started"]
    assert len(stamps) == 1 + len(INCLINES), events
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    assert any(s > HOUR - 2 for s in steps), steps  # +1 h
    assert any(s < -2 * HOUR + 2 for s in steps), steps  # -2 h

    # on the treadmill's side: one set-elevation per step, on the monotonic schedule
    elevations = [
        (r.at, decode_digits(r.request.field) / 10)
        for r in sim.wire.requests
        if isinstance(r.request, Request) and r.request.op == Op.SET_ELEVATION
    ]
    changes = [(at, pct) for at, pct in elevations if at >= started + 1.0]  # after settle's 0 %
    assert [pct for _, pct in changes[: len(INCLINES)]] == list(INCLINES), elevations
    arrived = [at - started for at, _ in changes[: len(INCLINES)]]
    schedule = [2.0 + i * PHASE_S for i in range(len(INCLINES))]
    errors = [a - s for a, s in zip(arrived, schedule, strict=True)]
    assert all(-0.02 <= e <= 0.1 for e in errors), errors  # the jumps moved nothing
    gaps = [b - a for a, b in itertools.pairwise(arrived)]
    assert all(abs(g - PHASE_S) <= 0.05 for g in gaps), gaps
    # and the program ended when its last step was over (then the ramp down), not an hour off
    finished = next(e for e in events if e.type == "session_finished")
    assert finished.details["ended"] == "finished", finished
    duration = finished.details["duration_s"]
    assert isinstance(duration, float)
    program_s = 2.0 + PHASE_S * len(INCLINES)
    assert program_s <= duration <= program_s + 3.0, finished
