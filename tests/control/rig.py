"""A controller driving the simulated treadmill over a real pty, with a trace of the belt."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import waiting

from teardown import finish
from treadctl.control.controller import Controller
from treadctl.core import units
from treadctl.core.commands import Command, ManualSet, Result, Start
from treadctl.core.device import WalkDirection
from treadctl.core.program import Program
from treadctl.core.safety import SafetyRules
from treadctl.core.state import Event, Mode, Snapshot
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.base import Driver
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import (
    BadRequest,
    Dialect,
    Op,
    Request,
    decode_speed_field,
)
from treadctl.programs.library import builtin_programs
from treadctl.sim.personality import Personality
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill

CAPS = WoodwayDriver.capabilities
# Fast defaults so tests that are not about ramps or the interlock do not wait for them.
FAST = SafetyRules(
    speed_resolution_kmh=CAPS.speed_resolution_kmh,
    max_accel_mps2=0.5,
    estop_interlock_s=0.2,
    reversal_countdown_s=1.0,
)
DEFAULT = SafetyRules(speed_resolution_kmh=CAPS.speed_resolution_kmh)


@dataclass(frozen=True, slots=True)
class WireSpeed:
    at: float
    kmh: float  # signed: negative is reverse


@dataclass
class Rig:
    sim: SimulatedTreadmill
    driver: Driver
    controller: Controller
    task: asyncio.Task[None]
    events: list[Event] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    trace: list[tuple[float, float]] = field(default_factory=list)  # (time, belt km/h signed)

    async def run(self, command: Command) -> Result:
        return await self.controller.execute(command)

    async def estop_cause(self, timeout: float = 3.0) -> str:
        """The cause of the last `estop` event, waiting for it: the mode says `estop` as soon as
        the stop is latched, the event follows once the treadmill confirmed the stop."""
        await self.until(lambda: "estop" in self.event_types(), timeout, "an estop event")
        return str([e for e in self.events if e.type == "estop"][-1].details["cause"])

    async def until(self, check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        await waiting.until(check, timeout=timeout, what=what or str(check), step=0.02)

    async def mode(self, mode: Mode, timeout: float = 10.0) -> None:
        await self.until(lambda: self.controller.mode is mode, timeout, f"mode {mode}")

    async def interlock_over(self, timeout: float = 5.0) -> None:
        """Until the start interlock (rule 7, after power-up, an e-stop or a reset) has passed."""
        supervisor = self.controller.supervisor
        await self.until(
            lambda: self.controller.clock() >= supervisor.interlock_until, timeout, "interlock over"
        )

    async def ticks(self, n: int, timeout: float = 5.0) -> None:
        """Until the controller has read the belt and told its listeners `n` more times."""
        target = len(self.snapshots) + n
        await self.until(lambda: len(self.snapshots) >= target, timeout, f"{n} more ticks")

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    async def program_to_end(self, name: str, timeout: float = 40.0) -> None:
        """Start program `name` and wait until its session has finished."""
        res = await self.run(Start(name))
        assert res.ok, res.message
        await self.until(
            lambda: "session_finished" in self.event_types(), timeout, "program finished"
        )

    async def silenced_at_speed(self) -> float:
        """A manual session at 1.5 km/h, then the treadmill falls silent: `fault` follows within
        a second. Returns when the silence began."""
        assert (await self.run(ManualSet(1.5, WalkDirection.FORWARD))).ok
        await self.until(lambda: self.sim.belt.speed_kmh > 1.0, 10, "at speed")
        t0 = time.monotonic()
        self.sim.faults.silent = True
        await self.mode(Mode.FAULT, 2)
        assert time.monotonic() - t0 < 1.0
        return t0

    def phase_directions(self) -> list[tuple[str, str]]:
        """(walk, belt) of each phase started, as the events said."""
        phases = [e.details for e in self.events if e.type == "phase_started"]
        return [(p["walk"], p["belt"]) for p in phases]

    def finished(self) -> dict[str, Any]:
        """The details of the last session_finished event."""
        return [e for e in self.events if e.type == "session_finished"][-1].details

    def wire_speeds(self) -> list[WireSpeed]:
        out = []
        for r in self.sim.wire.requests:
            if isinstance(r.request, Request) and r.request.op == Op.SET_SPEED:
                tenths, reverse = decode_speed_field(r.request.field, Dialect.WOODWAY)
                kmh = units.tenths_mph_to_kmh(tenths)
                out.append(WireSpeed(r.at, -kmh if reverse else kmh))
        return out

    def ops_since(self, t: float) -> list[int]:
        out: list[int] = []
        for r in self.sim.wire.requests:
            if r.at < t:
                continue
            if isinstance(r.request, Request):
                out.append(r.request.op)
            elif isinstance(r.request, BadRequest):
                out.append(r.request.byte)
        return out


async def _trace(rig: Rig) -> None:
    while True:
        rig.sim.belt.advance(rig.sim.clock())
        rig.trace.append((time.monotonic(), rig.sim.belt.speed_kmh))
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def rig(
    rules: SafetyRules = FAST,
    *,
    link: Path | None = None,
    belt: BeltPhysics | None = None,
    profile: DeviceProfile | None = None,
    time_scale: float = 1.0,
    wait_interlock: bool = True,
) -> AsyncIterator[Rig]:
    profile = profile or DeviceProfile(
        "woodway",
        CAPS,
        max_accel_mps2=min(rules.max_accel_mps2, 0.15),
        countdown_s=rules.reversal_countdown_s,
    )
    async with driver_rig(
        "woodway",
        lambda path: WoodwayDriver(path, poll_interval_s=0.1),
        profile,
        rules,
        link=link,
        belt=belt,
        time_scale=time_scale,
        wait_interlock=wait_interlock,
    ) as r:
        yield r


@contextlib.asynccontextmanager
async def driver_rig(
    personality: str | Personality,
    make_driver: Callable[[str], Driver],
    profile: DeviceProfile,
    rules: SafetyRules = FAST,
    *,
    link: Path | None = None,
    belt: BeltPhysics | None = None,
    time_scale: float = 1.0,
    wait_interlock: bool = True,
    programs: Mapping[str, Program] | None = None,
) -> AsyncIterator[Rig]:
    """Any driver against its simulator personality, through the controller."""
    async with SimulatedTreadmill(personality, link=link, belt=belt) as sim:
        driver = make_driver(str(link) if link else sim.path)
        async with controller_rig(
            sim,
            driver,
            profile,
            rules,
            time_scale=time_scale,
            wait_interlock=wait_interlock,
            programs=programs,
        ) as r:
            yield r


@contextlib.asynccontextmanager
async def controller_rig(
    sim: SimulatedTreadmill,
    driver: Driver,
    profile: DeviceProfile,
    rules: SafetyRules,
    *,
    time_scale: float = 1.0,
    wait_interlock: bool = True,
    programs: Mapping[str, Program] | None = None,
) -> AsyncIterator[Rig]:
    """Open `driver` on `sim`, run a controller on it, trace the belt; all undone on exit."""
    await driver.open()
    known = {name: e.program for name, e in builtin_programs().items()}
    controller = Controller(
        driver,
        profile=profile,
        rules=rules,
        programs={**known, **(programs or {})},
        tick_s=0.1,
        time_scale=time_scale,
        reconnect_s=0.3,
    )
    task = asyncio.create_task(controller.run(), name="test.controller")
    r = Rig(sim, driver, controller, task)

    def record(item: Snapshot | Event) -> None:
        if isinstance(item, Event):
            r.events.append(item)
        else:
            r.snapshots.append(item)

    controller.add_listener(record)
    tracer = asyncio.create_task(_trace(r), name="test.trace")
    try:
        await asyncio.wait_for(controller.ready.wait(), 5)
        if wait_interlock:
            await r.interlock_over(rules.estop_interlock_s + 5.0)
        yield r
    finally:
        try:
            await finish(tracer, "the belt tracer")
            await finish(task, "the controller")
        finally:
            await driver.close()


def with_rules(**changes: object) -> SafetyRules:
    return dataclasses.replace(FAST, **changes)  # type: ignore[arg-type]
