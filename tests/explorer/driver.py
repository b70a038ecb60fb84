"""A scripted in-memory driver: a belt model behind a Driver whose every exchange is decided
by a script (delay and outcome: answered, refused, timed out, garbled or link lost).

It keeps the Driver contract the real drivers keep (tests/drivers): `stop_now` halts and is
written ahead of the exchange lock; a moving command while halted is refused `halted`; a start
confirmed after a halt is refused (`_mark_started`); a belt found stopped after a confirmed start
is reported as the treadmill's own stop (`safety_stop`). The bytes of a command reach the
treadmill when its exchange begins; only the answer takes the delay, so a timed-out or garbled
answer still moved the belt, while a refused or lost one did not.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from treadctl.core.clock import Clock
from treadctl.core.device import BeltDirection, DeviceStatus
from treadctl.drivers.base import Driver
from treadctl.drivers.errors import CodecError, DriverError, LinkLost, Rejected, TimedOut
from treadctl.drivers.trackmaster import WoodwayDriver


class Op(enum.StrEnum):
    """A call into the driver, as the script and the trace name it."""

    OPEN = "open"
    CLOSE = "close"
    START = "start"
    STOP = "stop"
    STOP_NOW = "stop_now"
    ESTOP = "emergency_stop"
    SET_SPEED = "set_speed"
    SET_INCLINE = "set_incline"
    READ = "read_status"


STOPS = (Op.STOP_NOW, Op.ESTOP)


class Outcome(enum.StrEnum):
    ANSWER = "answer"
    REFUSE = "refuse"  # Rejected
    TIME_OUT = "time_out"  # TimedOut
    GARBLE = "garble"  # CodecError
    LINK_LOST = "link_lost"  # LinkLost


@dataclass(frozen=True, slots=True)
class Exchange:
    delay_s: float
    outcome: Outcome = Outcome.ANSWER
    unplug: bool = False  # with LINK_LOST: the link stays gone until replugged


class Script(Protocol):
    def call(self, op: Op, speed_kmh: float | None) -> None:
        """A call reached the driver (before it waits for the exchange lock)."""

    def exchange(self, op: Op, link_up: bool) -> Exchange:
        """How the treadmill answers this exchange (decided when it goes on the wire)."""

    def refused_halted(self, op: Op) -> None:
        """A moving command was refused because the driver is halted."""


@dataclass
class Belt:
    """The treadmill's side: its own ramp, its watchdog, its key and a slipping belt."""

    accel_kmh_s: float = 3.0
    estop_decel_kmh_s: float = 15.0
    watchdog_s: float = 0.5
    speed_kmh: float = 0.0
    direction: BeltDirection = BeltDirection.FORWARD
    target_kmh: float = 0.0
    target_direction: BeltDirection = BeltDirection.FORWARD
    incline_pct: float = 0.0
    running: bool = False
    fast_stop: bool = False
    key_in: bool = True
    slip: float = 1.0  # measured = actual x slip (a belt that slips reads slower)
    fed_at: float = 0.0
    updated_at: float = 0.0
    watchdog_trips: int = 0

    def advance(self, now: float) -> None:
        if self.running and now - self.fed_at > self.watchdog_s:
            self.running, self.fast_stop = False, True
            self.watchdog_trips += 1
        dt = max(0.0, now - self.updated_at)
        self.updated_at = now
        goal = self.target_kmh if self.running and self.key_in else 0.0
        if self.direction is not self.target_direction:
            if self.speed_kmh > 0:
                goal = 0.0
            else:
                self.direction = self.target_direction
        rate = self.estop_decel_kmh_s if self.fast_stop else self.accel_kmh_s
        step = rate * dt
        if abs(goal - self.speed_kmh) <= step:
            self.speed_kmh = goal
        else:
            self.speed_kmh += step if goal > self.speed_kmh else -step

    def feed(self, now: float) -> None:
        self.fed_at = now

    def start(self) -> None:
        self.target_kmh = 0.0
        self.running, self.fast_stop = self.key_in, False

    def stop(self, *, fast: bool) -> None:
        self.running, self.target_kmh = False, 0.0
        self.fast_stop = self.fast_stop or fast

    def pull_key(self) -> None:
        self.key_in = False
        self.stop(fast=True)

    def measured_kmh(self) -> float:
        return self.speed_kmh * self.slip


class ScriptedDriver(Driver):
    name = "scripted"
    capabilities = WoodwayDriver.capabilities

    def __init__(self, script: Script, clock: Clock, *, lax_start: bool = False) -> None:
        self.script = script
        self.clock = clock
        # Confirm a start even when an e-stop landed during its exchange, as every driver did
        # before 6ba62c3: the controller must not need the driver's help to keep its latch.
        self.lax_start = lax_start
        self.stop_now_calls = 0
        self.belt = Belt()
        self.plugged = True  # the cable
        self.opened = False  # the port, as the owner opened or closed it
        self.calls = 0
        # Virtual time of a LinkLost raised to the owner that no stop attempt has followed yet.
        self.unstopped_loss_at: float | None = None
        self._lock = asyncio.Lock()
        self._started = False

    # --- the Driver interface --------------------------------------------------------------------

    async def open(self) -> None:
        self._enter(Op.OPEN)
        try:
            await self._exchange(Op.OPEN, self._opened)
        except DriverError:
            self.opened = False  # as the real drivers close the port when the first stop fails
            raise

    async def close(self) -> None:
        self._enter(Op.CLOSE)
        self.opened = False

    async def start(self) -> None:
        self._enter(Op.START)
        await self._exchange(Op.START, self.belt.start, moves=True)
        if self.lax_start:
            self._started = True
        else:
            self._mark_started()

    async def stop(self) -> None:
        self._enter(Op.STOP)
        self._started = False
        await self._exchange(Op.STOP, lambda: self.belt.stop(fast=False))

    def stop_now(self) -> None:
        self._enter(Op.STOP_NOW)
        self.stop_now_calls += 1
        self._started = False
        self.halted = True
        if not (self.opened and self.plugged):
            raise LinkLost("stop written to a link that is gone")
        self.belt.advance(self.clock())
        self.belt.stop(fast=True)

    async def emergency_stop(self) -> None:
        self.stop_now()
        await self._exchange(Op.ESTOP, lambda: self.belt.stop(fast=True))

    async def set_speed(self, speed_kmh: float, belt: BeltDirection) -> float:
        self._enter(Op.SET_SPEED, speed_kmh)
        if not 0 <= speed_kmh <= self.capabilities.speed_max_kmh:
            raise Rejected(f"{speed_kmh} km/h out of range", code="out_of_range")

        def effect() -> None:
            self.belt.target_kmh, self.belt.target_direction = speed_kmh, belt

        await self._exchange(Op.SET_SPEED, effect, moves=speed_kmh > 0)
        return speed_kmh

    async def set_incline(self, incline_pct: float) -> float:
        self._enter(Op.SET_INCLINE)
        caps = self.capabilities
        if not caps.incline_min_pct <= incline_pct <= caps.incline_max_pct:
            raise Rejected(f"incline {incline_pct} % out of range", code="out_of_range")

        def effect() -> None:
            self.belt.incline_pct = incline_pct

        await self._exchange(Op.SET_INCLINE, effect)
        return incline_pct

    async def read_status(self) -> DeviceStatus:
        self._enter(Op.READ)
        await self._exchange(Op.READ, None)
        belt = self.belt
        belt.advance(self.clock())
        return DeviceStatus(
            running=belt.running,
            belt=belt.direction,
            speed_kmh=belt.measured_kmh(),
            incline_pct=belt.incline_pct,
            watchdog_armed=belt.running,
            safety_stop=self._started and not belt.running,
        )

    async def keepalive(self) -> NoReturn:
        while True:
            await asyncio.sleep(0.2)
            await self.read_status()

    # --- the wire --------------------------------------------------------------------------------

    def _enter(self, op: Op, speed_kmh: float | None = None) -> None:
        self.calls += 1
        if op in STOPS:
            self.unstopped_loss_at = None
        self.script.call(op, speed_kmh)

    def _opened(self) -> None:
        self.opened = True
        self._started = False
        self.belt.stop(fast=False)  # a driver never inherits a moving belt

    async def _exchange(
        self, op: Op, effect: Callable[[], None] | None, *, moves: bool = False
    ) -> None:
        async with self._lock:
            if moves and self.halted:
                self.script.refused_halted(op)
                raise Rejected("emergency stop in effect, the belt may not move", code="halted")
            link_up = self.plugged and (self.opened or op is Op.OPEN)
            plan = self.script.exchange(op, link_up)
            now = self.clock()
            self.belt.advance(now)
            if not link_up or plan.outcome is Outcome.LINK_LOST:
                if plan.unplug:
                    self.plugged = False
                await asyncio.sleep(plan.delay_s)
                self._lost(op)
            self.belt.feed(now)
            if effect is not None and plan.outcome is not Outcome.REFUSE:
                effect()
            await asyncio.sleep(plan.delay_s)
            self.belt.feed(self.clock())
            match plan.outcome:
                case Outcome.REFUSE:
                    raise Rejected(f"treadmill refused {op}")
                case Outcome.TIME_OUT:
                    raise TimedOut(f"no answer to {op}")
                case Outcome.GARBLE:
                    raise CodecError(f"garbled answer to {op}")

    def _lost(self, op: Op) -> NoReturn:
        if op not in STOPS and op is not Op.OPEN and self.unstopped_loss_at is None:
            self.unstopped_loss_at = self.clock()
        raise LinkLost(f"link lost during {op}")
