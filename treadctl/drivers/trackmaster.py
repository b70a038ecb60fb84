"""Trackmaster and Woodway (Trackmaster-compatible) drivers: the session over one serial link.

One command in flight at a time; every command is acknowledged (Bx) or answered (Dx).
The belt is started with A0, which arms the treadmill's 0.5 s Communication-Disconnect-Stop
watchdog, so the owner polls (`read_status`) at least every 0.25 s while the link is open: if
treadctl dies or its controller wedges, the belt stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping
from typing import ClassVar

import structlog

from treadctl.core import units
from treadctl.core.device import BeltDirection, Capabilities, DeviceStatus, with_min_speed
from treadctl.drivers import trackmaster_codec as codec
from treadctl.drivers.base import Driver
from treadctl.drivers.errors import CodecError, DriverError, LinkLost, Rejected, TimedOut
from treadctl.drivers.transport import SerialLink, SerialSettings

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
        response_timeout_s: float = 0.25,
        retries: int = 1,
        max_misses: int = 3,
        belt_states: Mapping[int, bool] | None = None,
        min_speed_kmh: float | None = None,
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
        self.baudrate = baudrate
        self.poll_interval_s = poll_interval_s
        self.response_timeout_s = response_timeout_s
        self.retries = retries
        self.max_misses = max_misses
        self.belt_states = _checked_belt_states(belt_states or {})
        self._unknown_states: set[int] = set()  # warned about once each
        self._link = SerialLink(SerialSettings(port, baudrate))
        self._lock = asyncio.Lock()
        self._misses = 0
        self._started = False
        self.last_status: DeviceStatus | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self._link = SerialLink(SerialSettings(self.port, self.baudrate))
        await self._link.open()
        self._misses = 0
        try:
            await self._command(codec.Op.STOP)
        except DriverError:
            await self._link.close()
            raise
        log.info("treadmill connected, belt stopped", driver=self.name, port=self.port)

    async def close(self) -> None:
        await self._link.close()

    # --- commands ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._command(codec.Op.SET_SPEED, codec.encode_speed_field(0, False, self.dialect))
        await self._command(codec.Op.START_WATCHDOG, moves=True)
        self._mark_started()

    async def stop(self) -> None:
        self._started = False
        await self._command(codec.Op.AUTO_STOP)

    def stop_now(self) -> None:
        self._started = False
        self.halted = True
        # On the wire now, ahead of the lock: a command in flight must not delay the stop.
        self._link.write(bytes([codec.Op.STOP]))
        log.info("emergency stop sent", driver=self.name)  # the owner logs why, as a warning

    async def emergency_stop(self) -> None:
        self.stop_now()
        await self._command(codec.Op.STOP)  # then confirmed in turn

    async def set_speed(self, speed_kmh: float, belt: BeltDirection) -> float:
        if speed_kmh < 0 or speed_kmh > self.capabilities.speed_max_kmh:
            raise Rejected(
                f"{speed_kmh:.2f} km/h is outside 0-{self.capabilities.speed_max_kmh:.1f} km/h",
                code="out_of_range",
            )
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
        caps = self.capabilities
        if not caps.incline_min_pct <= incline_pct <= caps.incline_max_pct:
            raise Rejected(
                f"incline {incline_pct} % is outside "
                f"{caps.incline_min_pct}-{caps.incline_max_pct} %",
                code="out_of_range",
            )
        # The treadmill takes 0.5 % steps and answers BE otherwise; round down, never steeper.
        tenths = math.floor(incline_pct * 10 / 5 + 1e-6) * 5
        if abs(tenths / 10 - incline_pct) > 1e-6:
            log.info(
                "incline rounded down to the treadmill's 0.5 % step",
                requested_pct=incline_pct,
                commanded_pct=tenths / 10,
            )
        await self._command(codec.Op.SET_ELEVATION, codec.encode_elevation_field(tenths))
        return tenths / 10

    async def read_status(self) -> DeviceStatus:
        async with self._lock:
            state = await self._exchange(bytes([codec.Op.GET_STATE]))
            speed = await self._exchange(bytes([codec.Op.GET_SPEED]))
            elevation = await self._exchange(bytes([codec.Op.GET_ELEVATION]))
        if not isinstance(state, codec.StateReply):
            raise CodecError(f"C0 answered with {state}")
        if not isinstance(speed, codec.ValueReply) or not isinstance(elevation, codec.ValueReply):
            raise CodecError("C1/C2 answered without a value")
        tenths_mph, reverse = codec.decode_speed_field(speed.field, self.dialect)
        running = self._running(state.byte)
        status = DeviceStatus(
            running=running,
            belt=BeltDirection.REVERSE if reverse else BeltDirection.FORWARD,
            speed_kmh=units.tenths_mph_to_kmh(tenths_mph),
            incline_pct=codec.decode_digits(elevation.field) / 10,
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
        async with self._lock:
            if moves and self.halted:
                raise Rejected(
                    f"{self.name}: emergency stop in effect, the belt may not move", code="halted"
                )
            await self._exchange(codec.encode_request(op, field), moves=moves)

    async def _exchange(self, request: bytes, *, moves: bool = False) -> codec.Response:
        """Send one request and return its answer; the caller holds the lock."""
        stale = self._link.discard_input()
        if stale:
            log.debug("discarded stale input", driver=self.name, data=stale.hex(" "))
        for attempt in range(self.retries + 1):
            if moves and self.halted:  # an e-stop written meanwhile (e.g. before a retry)
                raise Rejected(
                    f"{self.name}: emergency stop in effect, the belt may not move", code="halted"
                )
            self._link.write(request)
            try:
                response = await self._await_response(request[0])
            except (TimedOut, CodecError) as exc:
                self._misses += 1
                log.info(
                    "no valid answer",
                    driver=self.name,
                    request=request.hex(" "),
                    error=str(exc),
                    misses=self._misses,
                )
                if self._misses >= self.max_misses:
                    raise LinkLost(
                        f"{self.name} on {self.port}: no valid answer to {self._misses} requests"
                    ) from exc
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.02)  # let the rest of a noise burst arrive, then drop it
                self._link.discard_input()
                continue
            self._misses = 0
            if isinstance(response, codec.ErrorReply):
                code, text = _REJECTION[response.code]
                raise Rejected(f"{self.name} refused {request.hex(' ')}: {text}", code=code)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _await_response(self, op: int) -> codec.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.response_timeout_s
        buf = bytearray()
        while True:
            while buf and buf[0] in _STRAY_ACKS and buf[0] != codec.ack_for(op):
                del buf[0]
            try:
                response, used = codec.parse_response(op, buf)
            except CodecError as exc:
                raise CodecError(f"{exc} (received {bytes(buf).hex(' ')})") from None
            if response is not None:
                if used < len(buf):
                    log.debug("extra bytes after answer", data=bytes(buf[used:]).hex(" "))
                return response
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimedOut(
                    f"{self.name}: no complete answer to {op:02X} within "
                    f"{self.response_timeout_s} s (received {bytes(buf).hex(' ') or 'nothing'})"
                )
            buf += await self._link.read(remaining)


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
