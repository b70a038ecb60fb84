"""CSAFE treadmill consoles: the session over one serial link (9600 8N1).

CSAFE has no reverse and no watchdog: the belt runs forward only (backward walking is
`retro_mode = "face-away"`), and a console keeps the belt running when the host goes quiet. So
the daemon polls (GetSpeed + GetGrade) at least every 0.5 s, treats silence as a lost link, and
the user keeps the safety key on. The belt runs while the console is in the InUse state.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Unpack

import structlog

from treadctl.core.device import BeltDirection, Capabilities, DeviceStatus, with_min_speed
from treadctl.drivers import csafe_codec as codec
from treadctl.drivers.base import Driver
from treadctl.drivers.csafe_codec import Cmd, FrameStatus, Reply, State, Unit
from treadctl.drivers.errors import CodecError, Rejected
from treadctl.drivers.session import Parser, Session, SessionOptions
from treadctl.transport.serial import SerialSettings

log = structlog.get_logger(__name__)

SpeedUnits = Literal["kmh", "mph"]
SPEED_UNIT = {"kmh": Unit.KMH_TENTHS, "mph": Unit.MPH_TENTHS}
SPEED_MAX_KMH = 20.0  # what commercial consoles take; a console refuses more by itself
MAX_POLL_INTERVAL_S = 0.5

_READ = codec.request([codec.Command(Cmd.GET_SPEED), codec.Command(Cmd.GET_GRADE)])
_GO_IDLE = codec.request([codec.Command(Cmd.GO_IDLE)])
# Follows every set-point frame: its reply's "previous frame status" says how the console took
# the set-point (CSAFE tells nothing about a frame in that frame's own reply).
_GET_STATUS = codec.request([codec.Command(Cmd.GET_STATUS)])


def capabilities(units: SpeedUnits = "kmh", min_speed_kmh: float | None = None) -> Capabilities:
    step = codec.speed_kmh(1, SPEED_UNIT[units])
    caps = Capabilities(
        speed_max_kmh=SPEED_MAX_KMH,
        speed_resolution_kmh=step,
        speed_min_kmh=step,  # no minimum known for consoles in general: device.min_speed_kmh
        incline_min_pct=0.0,
        incline_max_pct=15.0,
        incline_step_pct=0.1,
        reverse=False,
        reports_actual_speed=True,
        reports_safety_stop=True,  # the console leaves InUse (stop button, safety key)
        watchdog_s=None,
        max_poll_interval_s=MAX_POLL_INTERVAL_S,
    )
    return with_min_speed(caps, min_speed_kmh)


def stop_frame(units: SpeedUnits = "kmh") -> bytes:
    """Speed 0, then GoIdle, in one frame: a console that will not leave InUse on GoIdle
    still ramps the belt down. CSAFE has no faster stop; the safety key is the real one."""
    return codec.request([codec.set_speed(0, SPEED_UNIT[units]), codec.Command(Cmd.GO_IDLE)])


def _parse_reply(buf: bytes) -> tuple[Reply | None, int]:
    return codec.parse_reply(buf)


def _parse_reading(buf: bytes) -> tuple[Reply | None, int]:
    reply, used = codec.parse_reply(buf)
    if reply is not None and not reply.answers:
        return None, used  # a status-only reply to a stop written on the e-stop path
    return reply, used


class CsafeDriver(Driver):
    name: ClassVar[str] = "csafe"

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        units: SpeedUnits = "kmh",
        poll_interval_s: float = 0.1,
        min_speed_kmh: float | None = None,
        **session: Unpack[SessionOptions],
    ) -> None:
        # The period the owner reads the console at (device.poll_interval_s), checked here.
        if not 0 < poll_interval_s <= MAX_POLL_INTERVAL_S:
            raise ValueError(
                f"poll interval {poll_interval_s} s must be within (0, {MAX_POLL_INTERVAL_S}] s:"
                " silence is how a lost console shows"
            )
        self.port = port
        self.units: SpeedUnits = units
        self.unit = SPEED_UNIT[units]
        self.capabilities = capabilities(units, min_speed_kmh)
        self.poll_interval_s = poll_interval_s
        self._session = Session(
            self.name,
            SerialSettings(port, baudrate),
            halted=lambda: self.halted,
            **session,
        )
        self._stop = stop_frame(units)
        self._started = False
        self._toggle: bool | None = None
        self._last_request = b""
        self._incline_pct = 0.0
        self.last_status: DeviceStatus | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._toggle = None
        await self._session.open(lambda: self._send(self._stop))
        log.info("console connected, belt stopped", driver=self.name, port=self.port)

    async def close(self) -> None:
        await self._session.close()

    # --- commands ------------------------------------------------------------------------------

    async def start(self) -> None:
        frame = codec.request([codec.Command(Cmd.GO_IN_USE), codec.set_speed(0, self.unit)])
        reply, taken = await self._send_confirmed(frame, moves=True)
        if reply.status.state is not State.IN_USE:
            raise Rejected(
                f"{self.name}: the console did not go InUse (state {_state(reply)}); "
                "is the safety key in and the console on its home screen?",
                code="refused",
            )
        check_taken(self.name, frame, taken)
        self._mark_started()

    async def stop(self) -> None:
        self._started = False
        await self._send(_GO_IDLE)

    def stop_now(self) -> None:
        self._started = False
        self.halted = True
        self._session.write_now(self._stop)  # ahead of the lock: nothing delays the stop
        self._toggle = None  # its reply may be skipped as a stray: the toggle count restarts
        log.info("emergency stop sent", driver=self.name)

    async def emergency_stop(self) -> None:
        self.stop_now()
        reply = await self._send(self._stop)  # then confirmed in turn
        if reply.status.state is State.IN_USE:
            log.warning("console still InUse after the stop; the belt ramps to 0", driver=self.name)

    async def set_speed(self, speed_kmh: float, belt: BeltDirection) -> float:
        self._check_speed_range(speed_kmh)
        if belt is BeltDirection.REVERSE:
            raise Rejected("CSAFE cannot reverse the belt (use face-away)", code="unsupported")
        step = codec.speed_kmh(1, self.unit)
        value = math.floor(speed_kmh / step + 1e-6)  # round down: never faster than asked
        frame = codec.request([codec.set_speed(value, self.unit)])
        _, taken = await self._send_confirmed(frame, moves=value > 0)
        check_taken(self.name, frame, taken)
        return value * step

    async def set_incline(self, incline_pct: float) -> float:
        self._check_incline_range(incline_pct)
        tenths = math.floor(incline_pct * 10 + 1e-6)
        frame = codec.request([codec.set_grade(tenths)])
        _, taken = await self._send_confirmed(frame)
        check_taken(self.name, frame, taken)
        self._incline_pct = tenths / 10
        return tenths / 10

    async def read_status(self) -> DeviceStatus:
        async with self._session.turn():
            reply = await self._exchange(_READ, _parse_reading)
        speed = reply.answer(Cmd.GET_SPEED)
        if speed is None:
            raise CodecError(f"{self.name}: the console did not answer GetSpeed")
        kmh = codec.speed_kmh(*codec.decode_int_unit(speed))
        grade = reply.answer(Cmd.GET_GRADE)
        incline = codec.grade_pct(*codec.decode_int_unit(grade)) if grade else self._incline_pct
        running = reply.status.state is State.IN_USE
        status = DeviceStatus(
            running=running,
            belt=BeltDirection.FORWARD,
            speed_kmh=kmh,
            incline_pct=incline,
            watchdog_armed=False,
            safety_stop=self._started and not running,
        )
        self.last_status = status
        return status

    # --- session -------------------------------------------------------------------------------

    async def _send(self, frame: bytes) -> Reply:
        async with self._session.turn():
            return await self._exchange(frame, _parse_reply)

    async def _send_confirmed(
        self, frame: bytes, *, moves: bool = False
    ) -> tuple[Reply, FrameStatus]:
        """Send a set-point frame; its reply and how the console took it.

        The console says how it took a frame only in the *next* reply, so a GetStatus follows
        in the same locked exchange: the call that sent the set-point is the one that learns
        it was refused (a refused speed is then the controller's e-stop, not a mismatch found
        seconds later).
        """
        async with self._session.turn(moves=moves):
            reply = await self._exchange(frame, _parse_reply, moves=moves)
            after = await self._exchange(_GET_STATUS, _parse_reply, judged=True)
        return reply, after.status.previous

    async def _exchange(
        self, frame: bytes, parse: Parser[Reply], *, judged: bool = False, moves: bool = False
    ) -> Reply:
        """One frame and its reply. `judged`: the caller acts on the previous-frame status
        itself; otherwise a frame the console did not take is only logged (a poll, a stop)."""
        reply = await self._session.exchange(frame, parse, moves=moves)
        status = reply.status
        if status.previous is not FrameStatus.OK and self._last_request and not judged:
            log.warning(
                "console did not take the previous frame",
                driver=self.name,
                frame=self._last_request.hex(" "),
                status=status.previous.name.lower(),
            )
        if self._toggle is not None and status.toggle == self._toggle:
            log.debug("frame toggle did not flip: the console missed a frame", driver=self.name)
        self._toggle = status.toggle
        self._last_request = frame
        return reply


def check_taken(name: str, frame: bytes, taken: FrameStatus) -> None:
    """Raise for a frame the console did not take, by its previous-frame status."""
    if taken is FrameStatus.OK:
        return
    sent = frame.hex(" ")
    if taken is FrameStatus.BAD:
        # Damaged on the line: not a refusal. The owner sends its set-point again next tick.
        raise CodecError(f"{name}: the console received {sent} damaged (status bad)")
    # Refused, or refused for now: either way the command did not happen.
    code = "refused" if taken is FrameStatus.REJECT else "not_ready"
    raise Rejected(f"{name}: the console refused {sent} (status {taken.name.lower()})", code=code)


def _state(reply: Reply) -> str:
    state = reply.status.state
    return state.name if isinstance(state, State) else str(state)
