"""The console side of CSAFE, on top of the belt physics.

A state machine as docs/protocols.md ("CSAFE") describes it: the belt runs only in InUse, a stop
button or a pulled safety key pauses the console, every reply carries the status byte (frame
toggle, how the previous frame was taken, state). Frames with a bad checksum get no reply; the
next reply says so. A console has no watchdog: silence from the host changes nothing.
"""

from __future__ import annotations

from typing import Literal

from treadctl.drivers import csafe_codec as codec
from treadctl.drivers.csafe_codec import BadFrame, Cmd, Command, FrameStatus, Request, State, Unit
from treadctl.drivers.errors import CodecError
from treadctl.sim.personality import Wire
from treadctl.sim.physics import BeltPhysics

_GO_IN_USE_FROM = frozenset({State.READY, State.IDLE, State.HAVE_ID, State.PAUSED, State.IN_USE})


class CsafePersonality:
    name = "csafe"

    def __init__(
        self,
        belt: BeltPhysics,
        *,
        units: Literal["kmh", "mph"] = "kmh",
        speed_max_kmh: float = 20.0,
        grade_max_pct: float = 15.0,
    ) -> None:
        self.belt = belt
        self.unit = Unit.KMH_TENTHS if units == "kmh" else Unit.MPH_TENTHS
        self.speed_max_kmh = speed_max_kmh
        self.grade_max_pct = grade_max_pct
        self.state = State.READY
        self.decoder = codec.RequestDecoder()
        self._toggle = False
        self._previous = FrameStatus.OK
        self._wire: Wire | None = None

    async def start(self, wire: Wire) -> None:
        self._wire = wire

    async def stop(self) -> None:
        self._wire = None

    def describe(self) -> str:
        return f"console {self.state.name}"

    def receive(self, data: bytes, now: float) -> None:
        self.belt.received(now)  # no watchdog to feed; kept for the silence report
        if self._wire is None:
            return
        out = bytearray()
        for item in self.decoder.feed(data):
            self._wire.record(item, now)
            if isinstance(item, BadFrame):
                self._previous = FrameStatus.BAD  # no reply; the next one says so
                continue
            out += self.handle(item, now)
        self._wire.answer(bytes(out))

    def handle(self, req: Request, now: float) -> bytes:
        self._sync(now)
        answers: list[Command] = []
        rejected = False
        for command in req.commands:
            try:
                answer = self._command(command, now)
            except CodecError:
                rejected = True
                continue
            if answer is not None:
                answers.append(answer)
        self._toggle = not self._toggle
        reply = codec.encode_reply(codec.Status(self._toggle, self._previous, self.state), answers)
        self._previous = FrameStatus.REJECT if rejected else FrameStatus.OK
        return reply

    def _sync(self, now: float) -> None:
        """The console leaves InUse when the belt stopped without the host (key, stop button)."""
        self.belt.advance(now)
        if self.state is State.IN_USE and not self.belt.running:
            self.state = State.PAUSED

    def _command(self, c: Command, now: float) -> Command | None:  # noqa: C901, PLR0912 - one case per command
        """The answer to one command; CodecError when the console refuses it."""
        belt = self.belt
        match c.cmd:
            case Cmd.GET_STATUS:
                return None
            case Cmd.RESET | Cmd.GO_READY:
                belt.stop(now)
                self.state = State.READY
            case Cmd.GO_IDLE:
                belt.stop(now)
                self.state = State.IDLE
            case Cmd.GO_FINISHED:
                belt.stop(now, fast=False)
                self.state = State.FINISHED
            case Cmd.GO_HAVE_ID:
                if self.state not in (State.IDLE, State.READY):
                    raise CodecError("GoHaveID only from Idle or Ready")
                self.state = State.HAVE_ID
            case Cmd.GO_IN_USE:
                if self.state not in _GO_IN_USE_FROM or not belt.start(now, watchdog=False):
                    raise CodecError("cannot go InUse (state, or the safety key is out)")
                belt.set_speed(now, 0.0)
                self.state = State.IN_USE
            case Cmd.SET_SPEED:
                kmh = codec.speed_kmh(*codec.decode_int_unit(c.data))
                if kmh > self.speed_max_kmh + 1e-9 or (kmh and self.state is not State.IN_USE):
                    raise CodecError("speed out of range or not InUse")
                belt.set_speed(now, kmh)
            case Cmd.SET_GRADE:
                pct = codec.grade_pct(*codec.decode_int_unit(c.data))
                if pct > self.grade_max_pct + 1e-9:
                    raise CodecError("grade out of range")
                belt.set_incline(now, pct)
            case Cmd.GET_SPEED:
                step = codec.speed_kmh(1, self.unit)
                value = min(round(abs(belt.speed_kmh) / step), 0xFFFF)
                return Command(Cmd.GET_SPEED, codec.int_unit(value, self.unit))
            case Cmd.GET_GRADE:
                value = round(belt.incline_pct * 10)
                return Command(Cmd.GET_GRADE, codec.int_unit(value, Unit.GRADE_TENTHS))
            case Cmd.GET_UNITS:
                return Command(Cmd.GET_UNITS, bytes([0 if self.unit is Unit.KMH_TENTHS else 1]))
            case _:
                return None  # unsupported: ignored, as the captured console does (§1.1)
        return None
