"""Trackmaster serial protocol (and Woodway's Trackmaster-compatible dialect): bytes <-> messages.

Pure functions, used by the host driver and, from the other side of the wire, by the simulator.
Facts: docs/protocols.md, "Trackmaster/Woodway" (the service manuals, and pyWoodway).
One opcode byte, optionally followed by four ASCII digits; no framing, no checksum.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from treadctl.drivers.errors import CodecError


class Dialect(enum.Enum):
    TRACKMASTER = "trackmaster"
    WOODWAY = "woodway"  # leading ASCII '3' in the speed field means reverse


class Op(enum.IntEnum):
    START_WATCHDOG = 0xA0  # start belt, Communication-Disconnect-Stop enabled
    START = 0xA1  # start belt, watchdog disabled (trackmaster)
    STOP = 0xA2
    SET_SPEED = 0xA3
    SET_ELEVATION = 0xA4
    SET_TIME = 0xA5
    SET_PROTOCOL = 0xA6
    SET_STAGE = 0xA7
    RESET = 0xA8
    SET_WEIGHT_OR_START = 0xA9  # trackmaster: weight (+4 digits); woodway: start without timer
    AUTO_STOP = 0xAA
    AUTO_COOL_DOWN = 0xAB
    TOGGLE_ECHO = 0xAC
    GET_STATE = 0xC0
    GET_SPEED = 0xC1
    GET_ELEVATION = 0xC2
    GET_SET_SPEED = 0xC3  # woodway: firmware revision
    GET_SET_ELEVATION = 0xC4


class ErrorCode(enum.IntEnum):
    MASTER_TIMEOUT = 0xBD  # woodway
    OUT_OF_RANGE = 0xBE
    ILLEGAL_COMMAND = 0xBF


class BeltState(enum.IntEnum):
    STOPPED = 0x31
    RUNNING_WATCHDOG = 0x32
    RUNNING = 0x33


# The state byte is an ASCII digit like every other field; a digit other than the three above is
# a state the manuals do not name (a Woodway may have more), not a broken answer.
STATE_DIGITS = range(0x30, 0x3A)


FIELD_LEN = 4
_DIGITS = frozenset(b"0123456789")
_REVERSE_DIGIT = ord("3")
_FORWARD_DIGIT = ord("0")

# Data bytes that follow each opcode, by dialect (a treadmill reads them before answering).
_TRACKMASTER_FIELDS: dict[int, int] = {
    Op.SET_SPEED: 4,
    Op.SET_ELEVATION: 4,
    Op.SET_TIME: 4,
    Op.SET_PROTOCOL: 2,
    Op.SET_STAGE: 2,
    Op.SET_WEIGHT_OR_START: 4,
}
_WOODWAY_FIELDS: dict[int, int] = {**_TRACKMASTER_FIELDS, Op.SET_WEIGHT_OR_START: 0}


def field_len(dialect: Dialect, op: int) -> int:
    table = _WOODWAY_FIELDS if dialect is Dialect.WOODWAY else _TRACKMASTER_FIELDS
    return table.get(op, 0)


def ack_for(op: int) -> int:
    """Acknowledgement byte of an input command: A0 -> B0 … AC -> BC."""
    return op + 0x10


# --- fields -------------------------------------------------------------------------------------


def encode_digits(value: int, width: int = FIELD_LEN) -> bytes:
    if not 0 <= value < 10**width:
        raise CodecError(f"{value} does not fit in {width} ASCII digits")
    return f"{value:0{width}d}".encode("ascii")


def decode_digits(field: bytes) -> int:
    if not field or any(b not in _DIGITS for b in field):
        raise CodecError(f"not ASCII digits: {field.hex(' ')}")
    return int(field.decode("ascii"))


def encode_speed_field(tenths_mph: int, reverse: bool, dialect: Dialect) -> bytes:
    """Speed in tenths of a mph: '0020' is 2.0 mph; woodway reverse 2.0 mph is '3020'."""
    if dialect is Dialect.TRACKMASTER:
        if reverse:
            raise CodecError("the trackmaster protocol has no reverse")
        return encode_digits(tenths_mph)
    if not 0 <= tenths_mph <= 999:
        raise CodecError(f"{tenths_mph / 10} mph does not fit the woodway speed field")
    lead = _REVERSE_DIGIT if reverse else _FORWARD_DIGIT
    return bytes([lead]) + encode_digits(tenths_mph, 3)


def decode_speed_field(field: bytes, dialect: Dialect) -> tuple[int, bool]:
    """(tenths of a mph, reverse) from a 4-byte speed field."""
    if len(field) != FIELD_LEN:
        raise CodecError(f"speed field must be 4 bytes, got {field.hex(' ')}")
    if dialect is Dialect.WOODWAY:
        if field[0] not in (_REVERSE_DIGIT, _FORWARD_DIGIT):
            raise CodecError(f"woodway speed field must start with '0' or '3': {field.hex(' ')}")
        return decode_digits(field[1:]), field[0] == _REVERSE_DIGIT
    return decode_digits(field), False


def encode_elevation_field(tenths_pct: int) -> bytes:
    """Elevation in tenths of a percent; the last digit must be 0 or 5 (0.5 % steps)."""
    if tenths_pct % 5:
        raise CodecError(f"elevation {tenths_pct / 10} % is not a multiple of 0.5 %")
    return encode_digits(tenths_pct)


# --- requests (host -> treadmill) ---------------------------------------------------------------


def encode_request(op: Op, field: bytes = b"") -> bytes:
    return bytes([op]) + field


def set_speed(tenths_mph: int, reverse: bool, dialect: Dialect) -> bytes:
    return encode_request(Op.SET_SPEED, encode_speed_field(tenths_mph, reverse, dialect))


def set_elevation(tenths_pct: int) -> bytes:
    return encode_request(Op.SET_ELEVATION, encode_elevation_field(tenths_pct))


# --- responses (treadmill -> host) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    op: int


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: ErrorCode


@dataclass(frozen=True, slots=True)
class StateReply:
    byte: int  # the state byte as received: a BeltState, or a digit the manuals do not name

    @property
    def state(self) -> BeltState | None:
        """The documented state, or None for a state byte the manuals do not name."""
        return BeltState(self.byte) if self.byte in BeltState._value2member_map_ else None


def belt_running(byte: int, known: Mapping[int, bool]) -> bool | None:
    """Whether a state byte says the belt runs: True/False, or None when it is not known.

    `known` adds the meaning of bytes the manuals do not name (device.trackmaster.belt_states);
    it cannot change the three documented ones.
    """
    if byte in BeltState._value2member_map_:
        return byte != BeltState.STOPPED
    return known.get(byte)


@dataclass(frozen=True, slots=True)
class ValueReply:
    op: int  # the query it answers (C1 …)
    field: bytes


Response = Ack | ErrorReply | StateReply | ValueReply


def parse_response(request_op: int, buf: bytes | bytearray) -> tuple[Response | None, int]:
    """Parse the answer to `request_op` at the start of `buf`.

    Returns (response, bytes used), or (None, 0) when more bytes are needed.
    Raises CodecError when the bytes cannot be that answer.
    """
    if not buf:
        return None, 0
    if buf[0] in ErrorCode._value2member_map_:
        return ErrorReply(ErrorCode(buf[0])), 1
    if 0xA0 <= request_op <= 0xAF:
        _expect_first(buf, ack_for(request_op), request_op)
        return Ack(request_op), 1
    if request_op == Op.GET_STATE:
        return _parse_state(buf)
    if 0xC1 <= request_op <= 0xCD:
        _expect_first(buf, request_op + 0x10, request_op)
        if len(buf) < 1 + FIELD_LEN:
            return None, 0
        return ValueReply(request_op, bytes(buf[1 : 1 + FIELD_LEN])), 1 + FIELD_LEN
    raise CodecError(f"{request_op:02X} is not a request this codec sends")


def _expect_first(buf: bytes | bytearray, expected: int, request_op: int) -> None:
    if buf[0] != expected:
        raise CodecError(f"expected {expected:02X} for {request_op:02X}, got {buf[0]:02X}")


def _parse_state(buf: bytes | bytearray) -> tuple[Response | None, int]:
    _expect_first(buf, 0xD0, Op.GET_STATE)
    if len(buf) < 2:
        return None, 0
    if buf[1] not in STATE_DIGITS:
        raise CodecError(f"belt state byte {buf[1]:02X} is not an ASCII digit")
    return StateReply(buf[1]), 2


# --- request decoding (treadmill side, used by the simulator) -----------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    op: int
    field: bytes = b""


@dataclass(frozen=True, slots=True)
class BadRequest:
    """Bytes a treadmill must refuse: an unknown opcode or a field that is not digits."""

    byte: int
    code: ErrorCode


class RequestDecoder:
    """Streaming decoder of host requests; feed bytes, get requests in order."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._pending: bytearray = bytearray()

    def feed(self, data: bytes) -> list[Request | BadRequest]:
        out: list[Request | BadRequest] = []
        for byte in data:
            if self._pending:
                op = self._pending[0]
                if byte >= 0x80:
                    # An opcode inside a field: refuse the broken command, but obey the new one
                    # (a stop must never be lost in a half-received speed command).
                    out.append(BadRequest(op, ErrorCode.OUT_OF_RANGE))
                    self._pending.clear()
                elif byte not in _DIGITS:
                    out.append(BadRequest(op, ErrorCode.OUT_OF_RANGE))
                    self._pending.clear()
                    continue
                else:
                    self._pending.append(byte)
                    if len(self._pending) == 1 + field_len(self.dialect, op):
                        out.append(Request(op, bytes(self._pending[1:])))
                        self._pending.clear()
                    continue
            if byte in Op._value2member_map_:
                if field_len(self.dialect, byte):
                    self._pending.append(byte)
                else:
                    out.append(Request(byte))
            else:
                out.append(BadRequest(byte, ErrorCode.ILLEGAL_COMMAND))
        return out
