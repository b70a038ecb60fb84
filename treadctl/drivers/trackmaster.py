"""Trackmaster and Woodway (Trackmaster-compatible) drivers: the session over one serial link.

One command in flight at a time; every command is acknowledged (Bx) or answered (Dx).
The belt is started with A0, which arms the treadmill's 0.5 s Communication-Disconnect-Stop
watchdog, so the owner polls (`read_status`) at least every 0.25 s while the link is open: if
treadctl dies or its controller wedges, the belt stops.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import ClassVar, Unpack

import structlog

from treadctl.core import units
from treadctl.core.device import BeltDirection, Capabilities, DeviceStatus, with_min_speed
from treadctl.drivers import trackmaster_codec as codec
from treadctl.drivers.base import Driver
from treadctl.drivers.elevation_reads import ElevationReads
from treadctl.drivers.errors import CodecError, Rejected
from treadctl.drivers.session import Parser, Session, SessionOptions
from treadctl.transport.serial import SerialSettings

log = structlog.get_logger(__name__)

_REJECTION = {
    codec.ErrorCode.OUT_OF_RANGE: ("out_of_range", "input data out of range (BE)"),
    codec.ErrorCode.ILLEGAL_COMMAND: ("illegal_command", "illegal or unrecognised command (BF)"),
    codec.ErrorCode.MASTER_TIMEOUT: ("master_timeout", "master timeout (BD)"),
}
# Acks a stop sent on the fast path may leave behind; harmless, so skipped rather than noise.
_STRAY_ACKS = frozenset({codec.ack_for(codec.Op.STOP), codec.ack_for(codec.Op.AUTO_STOP)})


class TrackmasterDriver(Driver):
    name: ClassVar[str] = "trackmaster"
    dialect: ClassVar[codec.Dialect] = codec.Dialect.TRACKMASTER
    capabilities = Capabilities(
        speed_max_kmh=units.tenths_mph_to_kmh(150),  # 15 mph, the range trackmaster hosts clamp to
        speed_resolution_kmh=units.tenths_mph_to_kmh(1),
        # 0.2 mph: trackmaster-python's lower clamp; nothing says a Trackmaster takes 0.1 mph.
        speed_min_kmh=units.tenths_mph_to_kmh(2),
        incline_min_pct=0.0,
        incline_max_pct=25.0,
        incline_step_pct=0.5,
        reverse=False,
        reports_actual_speed=True,
        reports_safety_stop=True,  # inferred: belt state "stopped" although the host started it
        watchdog_s=0.5,
        max_poll_interval_s=0.25,
    )

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 4800,
        poll_interval_s: float = 0.1,
        belt_states: Mapping[int, bool] | None = None,
        min_speed_kmh: float | None = None,
        **session: Unpack[SessionOptions],
    ) -> None:
        """`belt_states`: the meaning (running or not) of C0 state bytes the manuals do not
        name, from device.trackmaster.belt_states; any other unnamed byte is "not running".
        `min_speed_kmh`: the treadmill's slowest speed (device.min_speed_kmh), else 0.2 mph."""
        self.capabilities = with_min_speed(type(self).capabilities, min_speed_kmh)
        # The period the owner reads the treadmill at (device.poll_interval_s): refused here
        # when it could not keep the watchdog fed, whoever builds the driver.
        if not 0 < poll_interval_s <= self.capabilities.max_poll_interval_s:
            raise ValueError(
                f"poll interval {poll_interval_s} s must be within "
                f"(0, {self.capabilities.max_poll_interval_s}] s to keep the watchdog fed"
            )
        self.port = port
        self.poll_interval_s = poll_interval_s
        self.belt_states = _checked_belt_states(belt_states or {})
        self._unknown_states: set[int] = set()  # warned about once each
        self._session = Session(
            self.name,
            SerialSettings(port, baudrate),
            halted=lambda: self.halted,
            **session,
        )
        self._started = False
        self._elevation = ElevationReads()
        self.last_status: DeviceStatus | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._elevation = ElevationReads()  # it may have moved while the link was down
        await self._session.open(lambda: self._command(codec.Op.STOP))
        log.info("treadmill connected, belt stopped", driver=self.name, port=self.port)

    async def close(self) -> None:
        await self._session.close()

    # --- commands ------------------------------------------------------------------------------

    async def start(self) -> None:
        zero = codec.set_speed(0, reverse=False, dialect=self.dialect)
        async with self._session.turn(moves=True):  # refused as a whole while halted
            await self._exchange(zero)
            await self._exchange(codec.encode_request(codec.Op.START_WATCHDOG), moves=True)
        self._mark_started()

    async def stop(self) -> None:
        self._started = False
        self._elevation.commanded(time.monotonic())  # auto stop lowers it to the minimum
        await self._command(codec.Op.AUTO_STOP)

    def stop_now(self) -> None:
        self._started = False
        self.halted = True
        # On the wire now, ahead of the lock: a command in flight must not delay the stop.
        self._session.write_now(bytes([codec.Op.STOP]))
        self._elevation.commanded(time.monotonic())
        log.info("emergency stop sent", driver=self.name)  # the owner logs why, as a warning

    async def emergency_stop(self) -> None:
        self.stop_now()
        await self._command(codec.Op.STOP)  # then confirmed in turn

    async def set_speed(self, speed_kmh: float, belt: BeltDirection) -> float:
        self._check_speed_range(speed_kmh)
        reverse = belt is BeltDirection.REVERSE
        if reverse and not self.capabilities.reverse:
            raise Rejected(f"the {self.name} protocol cannot reverse the belt", code="unsupported")
        tenths = units.kmh_to_tenths_mph_floor(speed_kmh)
        await self._command(
            codec.Op.SET_SPEED,
            codec.encode_speed_field(tenths, reverse, self.dialect),
            moves=tenths > 0,
        )
        return units.tenths_mph_to_kmh(tenths)

    async def set_incline(self, incline_pct: float) -> float:
        self._check_incline_range(incline_pct)
        # The treadmill takes 0.5 % steps and answers BE otherwise; round down, never steeper.
        tenths = math.floor(incline_pct * 10 / 5 + 1e-6) * 5
        if abs(tenths / 10 - incline_pct) > 1e-6:
            log.info(
                "incline rounded down to the treadmill's 0.5 % step",
                requested_pct=incline_pct,
                commanded_pct=tenths / 10,
            )
        self._elevation.commanded(time.monotonic())
        await self._command(codec.Op.SET_ELEVATION, codec.encode_elevation_field(tenths))
        return tenths / 10

    async def read_status(self) -> DeviceStatus:
        now = time.monotonic()
        reads = _STATUS_READS if self._elevation.due(now) else _STATUS_READS[:2]
        async with self._session.turn():
            answers: list[codec.Response] = await self._session.exchange_all(
                reads, refused=_is_refusal
            )
        for (request, _), answer in zip(reads, answers, strict=False):
            self._refusal(request, answer)
        state, speed = answers[:2]
        if not isinstance(state, codec.StateReply):
            raise CodecError(f"C0 answered with {state}")
        if not isinstance(speed, codec.ValueReply):
            raise CodecError("C1 answered without a value")
        if len(answers) == 3:
            if not isinstance(elevation := answers[2], codec.ValueReply):
                raise CodecError("C2 answered without a value")
            incline_pct = codec.decode_digits(elevation.field) / 10
            self._elevation.read(incline_pct, now)
        else:  # still since it was last read, under a second ago (elevation_reads.py)
            assert self.last_status is not None
            incline_pct = self.last_status.incline_pct
        tenths_mph, reverse = codec.decode_speed_field(speed.field, self.dialect)
        running = self._running(state.byte)
        status = DeviceStatus(
            running=running,
            belt=BeltDirection.REVERSE if reverse else BeltDirection.FORWARD,
            speed_kmh=units.tenths_mph_to_kmh(tenths_mph),
            incline_pct=incline_pct,
            watchdog_armed=state.state is codec.BeltState.RUNNING_WATCHDOG,
            safety_stop=self._started and not running,
        )
        self.last_status = status
        return status

    def _running(self, byte: int) -> bool:
        """What a C0 state byte says. A byte nobody named is "not known to be running": harmless
        while idle, and a belt that treadctl started and that then reports it is a treadmill
        stop (an e-stop), so an unknown state can never hide a stop. The belt's motion itself
        is judged on the measured speed (C1), whatever this says."""
        running = codec.belt_running(byte, self.belt_states)
        if running is not None:
            return running
        if byte not in self._unknown_states:
            self._unknown_states.add(byte)
            log.warning(
                "unknown belt state byte, taken as not running (a started belt reporting it is "
                "stopped by an e-stop); if your treadmill means running by it, set "
                "device.trackmaster.belt_states",
                driver=self.name,
                byte=f"{byte:02X}",
            )
        return False

    # --- session -------------------------------------------------------------------------------

    async def _command(self, op: codec.Op, field: bytes = b"", *, moves: bool = False) -> None:
        async with self._session.turn(moves=moves):
            await self._exchange(codec.encode_request(op, field), moves=moves)

    async def _exchange(self, request: bytes, *, moves: bool = False) -> codec.Response:
        """One request and its answer, within the caller's turn; a BE/BF/BD is Rejected."""
        response: codec.Response = await self._session.exchange(
            request, _parser(request[0]), moves=moves
        )
        self._refusal(request, response)
        return response

    def _refusal(self, request: bytes, response: codec.Response) -> None:
        """A BE/BF/BD answer raised as Rejected."""
        if isinstance(response, codec.ErrorReply):
            code, text = _REJECTION[response.code]
            raise Rejected(f"{self.name} refused {request.hex(' ')}: {text}", code=code)


def _parser(op: int) -> Parser[codec.Response]:
    ack = codec.ack_for(op)

    def parse(buf: bytes) -> tuple[codec.Response | None, int]:
        if buf and buf[0] in _STRAY_ACKS and buf[0] != ack:
            return None, 1
        return codec.parse_response(op, buf)

    return parse


def _is_refusal(response: codec.Response) -> bool:
    return isinstance(response, codec.ErrorReply)


# The status poll: belt state, measured speed, measured elevation (each request a single byte).
_STATUS_READS: tuple[tuple[bytes, Parser[codec.Response]], ...] = tuple(
    (bytes([op]), _parser(op))
    for op in (codec.Op.GET_STATE, codec.Op.GET_SPEED, codec.Op.GET_ELEVATION)
)


def _checked_belt_states(states: Mapping[int, bool]) -> dict[int, bool]:
    for byte in states:
        if byte in codec.BeltState._value2member_map_ or byte not in codec.STATE_DIGITS:
            raise ValueError(
                f"belt state byte {byte:02X}: only an ASCII digit other than 31, 32 and 33 "
                "(whose meaning is fixed) can be given a meaning"
            )
    return dict(states)


class WoodwayDriver(TrackmasterDriver):
    """Woodway in Trackmaster-compatible mode: a leading ASCII '3' in the speed field reverses."""

    name: ClassVar[str] = "woodway"
    dialect: ClassVar[codec.Dialect] = codec.Dialect.WOODWAY
    capabilities = dataclasses.replace(TrackmasterDriver.capabilities, reverse=True)
