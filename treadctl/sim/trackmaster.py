"""The treadmill side of the Trackmaster / Woodway protocol, on top of the belt physics."""

from __future__ import annotations

from treadctl.core import units
from treadctl.drivers import trackmaster_codec as codec
from treadctl.drivers.errors import CodecError
from treadctl.drivers.trackmaster_codec import BadRequest, Dialect, Op, Request
from treadctl.sim.personality import Wire
from treadctl.sim.physics import BeltPhysics

MAX_TENTHS_MPH = 150  # 15 mph
MAX_TENTHS_PCT = 250  # 25 %
FIRMWARE = b"0102"
_E_RANGE = bytes([codec.ErrorCode.OUT_OF_RANGE])
_E_ILLEGAL = bytes([codec.ErrorCode.ILLEGAL_COMMAND])


class TrackmasterPersonality:
    """Answers host requests exactly as docs/protocols.md ("Trackmaster/Woodway") describes."""

    def __init__(self, dialect: Dialect, belt: BeltPhysics, *, speed_min_tenths: int = 0) -> None:
        """`speed_min_tenths`: a treadmill that answers BE to a non-zero speed below this (the
        manuals do not say whether a real one does; trackmaster-python clamps to 0.2 mph)."""
        self.name = dialect.value
        self.speed_min_tenths = speed_min_tenths
        self.dialect = dialect
        self.belt = belt
        self.decoder = codec.RequestDecoder(dialect)
        # C0 answers these bytes instead of the documented ones (a treadmill whose states the
        # manuals do not name), e.g. {0x33: 0x34}; tests change it while the simulator runs.
        self.state_bytes: dict[int, int] = {}
        self._wire: Wire | None = None

    async def start(self, wire: Wire) -> None:
        self._wire = wire

    async def stop(self) -> None:
        self._wire = None

    def feed(self, data: bytes, now: float) -> bytes:
        """Bytes from the host in; the treadmill's answers out. Any byte feeds the watchdog."""
        self.belt.received(now)
        answers = bytearray()
        for req in self.decoder.feed(data):
            if self._wire is not None:
                self._wire.record(req, now)
            answers += self.handle(req, now)
        return bytes(answers)

    def receive(self, data: bytes, now: float) -> None:
        answers = self.feed(data, now)
        if self._wire is not None:
            self._wire.answer(answers)

    def describe(self) -> str:
        return ""

    def handle(self, req: Request | BadRequest, now: float) -> bytes:  # noqa: C901, PLR0911, PLR0912 - one case per opcode
        if isinstance(req, BadRequest):
            return bytes([req.code])
        belt = self.belt
        ack = bytes([codec.ack_for(req.op)]) if req.op < 0xB0 else b""
        match req.op:
            case Op.START_WATCHDOG:
                return ack if belt.start(now, watchdog=True) else _E_RANGE
            case Op.START:
                return ack if belt.start(now, watchdog=False) else _E_RANGE
            case Op.SET_WEIGHT_OR_START if self.dialect is Dialect.WOODWAY:
                return ack if belt.start(now, watchdog=False) else _E_RANGE
            case Op.STOP:
                belt.stop(now)
                return ack
            case Op.AUTO_STOP:
                belt.stop(now, fast=False)
                belt.set_incline(now, 0.0)
                return ack
            case Op.AUTO_COOL_DOWN:
                belt.set_speed(now, 0.0)
                belt.set_incline(now, 0.0)
                return ack
            case Op.SET_SPEED:
                return self._set_speed(req.field, now, ack)
            case Op.SET_ELEVATION:
                tenths = codec.decode_digits(req.field)
                if tenths % 5 or tenths > MAX_TENTHS_PCT:
                    return _E_RANGE
                belt.set_incline(now, tenths / 10)
                return ack
            case Op.GET_STATE:
                state = self._state(now)
                return bytes([0xD0, self.state_bytes.get(state, state)])
            case Op.GET_SPEED | Op.GET_ELEVATION | Op.GET_SET_SPEED | Op.GET_SET_ELEVATION:
                return bytes([req.op + 0x10]) + self._value(req.op, now)
            case op if 0xC5 <= op <= 0xCD:
                return bytes([op + 0x10]) + b"0000"
            case op if 0xA5 <= op <= 0xAC:
                return ack  # accepted but not functional, as the manual says
        return _E_ILLEGAL

    def _set_speed(self, field: bytes, now: float, ack: bytes) -> bytes:
        try:
            tenths, reverse = codec.decode_speed_field(field, self.dialect)
        except CodecError:
            return _E_RANGE
        if tenths > MAX_TENTHS_MPH or 0 < tenths < self.speed_min_tenths:
            return _E_RANGE
        kmh = units.tenths_mph_to_kmh(tenths)
        return ack if self.belt.set_speed(now, -kmh if reverse else kmh) else _E_RANGE

    def _state(self, now: float) -> codec.BeltState:
        self.belt.advance(now)
        if not self.belt.running:
            return codec.BeltState.STOPPED
        if self.belt.watchdog_armed:
            return codec.BeltState.RUNNING_WATCHDOG
        return codec.BeltState.RUNNING

    def _value(self, op: int, now: float) -> bytes:
        belt = self.belt
        belt.advance(now)
        if op == Op.GET_SPEED:
            return self._speed_field(belt.speed_kmh)
        if op == Op.GET_ELEVATION:
            return codec.encode_digits(round(belt.incline_pct * 10))
        if op == Op.GET_SET_SPEED:
            return (
                FIRMWARE
                if self.dialect is Dialect.WOODWAY
                else self._speed_field(belt.set_speed_kmh)
            )
        return codec.encode_digits(round(belt.set_incline_pct * 10))

    def _speed_field(self, signed_kmh: float) -> bytes:
        tenths = min(round(units.kmh_to_mph(abs(signed_kmh)) * 10), 999)
        reverse = signed_kmh < 0 and self.dialect is Dialect.WOODWAY
        return codec.encode_speed_field(tenths, reverse, self.dialect)
