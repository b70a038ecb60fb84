"""CSAFE (Communications Specification for Fitness Equipment): bytes <-> messages.

Pure functions, used by the host driver and, from the other side of the wire, by the simulator.
Facts: docs/protocols.md, "CSAFE". A standard frame is `F1 contents checksum F2`; the
checksum is the XOR of the contents; F0-F3 inside the frame, the checksum included, are sent as
`F3 0x` (x = byte & 3). Contents: short commands (0x80-0xFF, no data) and long commands
(0x00-0x7F, a byte count, data). A reply is `status [cmd count data]…`. Integers are little-endian.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from treadctl.drivers.errors import CodecError

EXT_START, START, STOP, STUFF = 0xF0, 0xF1, 0xF2, 0xF3
_FLAGS = frozenset({EXT_START, START, STOP, STUFF})
MAX_FRAME = 96  # bytes on the wire, flags included (Concept2 / PyRow)


class Cmd(enum.IntEnum):
    GET_STATUS = 0x80
    RESET = 0x81
    GO_IDLE = 0x82
    GO_HAVE_ID = 0x83
    GO_IN_USE = 0x85
    GO_FINISHED = 0x86
    GO_READY = 0x87
    GET_VERSION = 0x91
    GET_ID = 0x92
    GET_UNITS = 0x93
    GET_SPEED = 0xA5
    GET_GRADE = 0xA8
    SET_SPEED = 0x25
    SET_GRADE = 0x28


class Unit(enum.IntEnum):
    MPH = 0x10
    MPH_TENTHS = 0x11
    MPH_HUNDREDTHS = 0x12
    KMH = 0x30
    KMH_TENTHS = 0x31
    KMH_HUNDREDTHS = 0x32
    M_PER_MIN = 0x33
    GRADE_PCT = 0x4A
    GRADE_HUNDREDTHS = 0x4B
    GRADE_TENTHS = 0x4C
    REVS_PER_MIN = 0x52  # what the console in the real capture of §1.1 reports as "speed"


class State(enum.IntEnum):
    ERROR = 0
    READY = 1
    IDLE = 2
    HAVE_ID = 3
    IN_USE = 5
    PAUSED = 6
    FINISHED = 7
    MANUAL = 8
    OFFLINE = 9


class FrameStatus(enum.IntEnum):
    """How the console took the frame before the one this status byte answers."""

    OK = 0
    REJECT = 1
    BAD = 2
    NOT_READY = 3


_KMH_PER_UNIT: dict[int, float] = {
    Unit.MPH: 1.609344,
    Unit.MPH_TENTHS: 0.1609344,
    Unit.MPH_HUNDREDTHS: 0.01609344,
    Unit.KMH: 1.0,
    Unit.KMH_TENTHS: 0.1,
    Unit.KMH_HUNDREDTHS: 0.01,
    Unit.M_PER_MIN: 0.06,
}
_PCT_PER_UNIT: dict[int, float] = {
    Unit.GRADE_PCT: 1.0,
    Unit.GRADE_HUNDREDTHS: 0.01,
    Unit.GRADE_TENTHS: 0.1,
}


# --- framing ------------------------------------------------------------------------------------


def checksum(contents: bytes) -> int:
    value = 0
    for byte in contents:
        value ^= byte
    return value


def stuff(data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        if byte in _FLAGS:
            out += bytes([STUFF, byte & 0x03])
        else:
            out.append(byte)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            if byte > 0x03:
                raise CodecError(f"F3 escapes {byte:02X}, which is not 00-03")
            out.append(0xF0 | byte)
            escaped = False
        elif byte == STUFF:
            escaped = True
        elif byte in _FLAGS:
            raise CodecError(f"unescaped flag {byte:02X} inside a frame")
        else:
            out.append(byte)
    if escaped:
        raise CodecError("frame ends inside an F3 escape")
    return bytes(out)


def encode_frame(contents: bytes) -> bytes:
    """A standard frame: the checksum is stuffed too (PyRow-style encoders forget that)."""
    frame = bytes([START]) + stuff(contents + bytes([checksum(contents)])) + bytes([STOP])
    if len(frame) > MAX_FRAME:
        raise CodecError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    return frame


def split_frame(buf: bytes | bytearray) -> tuple[bytes | None, int]:
    """The first frame in `buf`: (checked contents, bytes used), or (None, 0) when incomplete.

    Bytes before the start flag are noise and raise CodecError, as do a bad checksum, a broken
    escape, an extended (F0) frame and an over-long frame.
    """
    if not buf:
        return None, 0
    if buf[0] != START:
        what = "extended frames (F0) are not supported" if buf[0] == EXT_START else "noise"
        raise CodecError(f"{what}: {bytes(buf[:8]).hex(' ')} before a start flag")
    end = bytes(buf).find(bytes([STOP]), 1)
    if end < 0:
        if len(buf) >= MAX_FRAME:
            raise CodecError(f"no stop flag within {MAX_FRAME} bytes")
        return None, 0
    body = unstuff(bytes(buf[1:end]))
    if not body:
        raise CodecError("empty frame (no checksum)")
    contents, check = body[:-1], body[-1]
    if checksum(contents) != check:
        raise CodecError(
            f"checksum {check:02X} does not match {checksum(contents):02X} "
            f"of {contents.hex(' ') or 'no contents'}"
        )
    return contents, end + 1


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a frame (request) or one command's answer (reply)."""

    cmd: int
    data: bytes = b""

    def encode(self) -> bytes:
        if self.cmd >= 0x80:
            if self.data:
                raise CodecError(f"short command {self.cmd:02X} carries no data")
            return bytes([self.cmd])
        if len(self.data) > 0xFF:
            raise CodecError(f"command {self.cmd:02X}: {len(self.data)} data bytes is too many")
        return bytes([self.cmd, len(self.data)]) + self.data


def encode_commands(commands: list[Command]) -> bytes:
    return b"".join(c.encode() for c in commands)


def decode_commands(contents: bytes, *, reply: bool = False) -> list[Command]:
    """Request contents (short or long commands), or reply data (every answer has a count)."""
    out: list[Command] = []
    i = 0
    while i < len(contents):
        cmd = contents[i]
        if cmd >= 0x80 and not reply:
            out.append(Command(cmd))
            i += 1
            continue
        if i + 1 >= len(contents):
            raise CodecError(f"command {cmd:02X} has no byte count")
        count = contents[i + 1]
        data = contents[i + 2 : i + 2 + count]
        if len(data) != count:
            raise CodecError(f"command {cmd:02X} announces {count} bytes, {len(data)} follow")
        out.append(Command(cmd, data))
        i += 2 + count
    return out


def request(commands: list[Command]) -> bytes:
    return encode_frame(encode_commands(commands))


# --- values -------------------------------------------------------------------------------------


def int_unit(value: int, unit: int) -> bytes:
    """An "integer plus unit": 2 bytes little-endian, then the unit byte."""
    if not 0 <= value <= 0xFFFF:
        raise CodecError(f"{value} does not fit in two bytes")
    return value.to_bytes(2, "little") + bytes([unit])


def decode_int_unit(data: bytes) -> tuple[int, int]:
    if len(data) != 3:
        raise CodecError(f"integer plus unit must be 3 bytes, got {data.hex(' ')}")
    return int.from_bytes(data[:2], "little"), data[2]


def set_speed(value: int, unit: Unit) -> Command:
    return Command(Cmd.SET_SPEED, int_unit(value, unit))


def set_grade(tenths_pct: int) -> Command:
    return Command(Cmd.SET_GRADE, int_unit(tenths_pct, Unit.GRADE_TENTHS))


def speed_kmh(value: int, unit: int) -> float:
    if unit not in _KMH_PER_UNIT:
        raise CodecError(f"unit {_unit_name(unit)} is not a belt speed")
    return value * _KMH_PER_UNIT[unit]


def grade_pct(value: int, unit: int) -> float:
    if unit not in _PCT_PER_UNIT:
        raise CodecError(f"unit {_unit_name(unit)} is not a grade")
    return value * _PCT_PER_UNIT[unit]


def _unit_name(unit: int) -> str:
    name = Unit(unit).name if unit in Unit._value2member_map_ else "unknown"
    return f"{unit:02X} ({name})"


# --- replies ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    toggle: bool  # flips with every frame the console took
    previous: FrameStatus
    state: State | int  # an int for a state the table does not name

    @classmethod
    def decode(cls, byte: int) -> Status:
        raw = byte & 0x0F
        state: State | int = State(raw) if raw in State._value2member_map_ else raw
        return cls(bool(byte & 0x80), FrameStatus((byte >> 4) & 0x03), state)

    def encode(self) -> int:
        return (0x80 if self.toggle else 0) | (self.previous << 4) | int(self.state)


@dataclass(frozen=True, slots=True)
class Reply:
    status: Status
    answers: tuple[Command, ...]

    def answer(self, cmd: int) -> bytes | None:
        return next((a.data for a in self.answers if a.cmd == cmd), None)


def parse_reply(buf: bytes | bytearray) -> tuple[Reply | None, int]:
    """The console's reply at the start of `buf`: (reply, bytes used) or (None, 0)."""
    contents, used = split_frame(buf)
    if contents is None:
        return None, 0
    if not contents:
        raise CodecError("reply without a status byte")
    answers = decode_commands(contents[1:], reply=True)
    return Reply(Status.decode(contents[0]), tuple(answers)), used


def encode_reply(status: Status, answers: list[Command]) -> bytes:
    body = bytearray([status.encode()])
    for a in answers:
        body += bytes([a.cmd, len(a.data)]) + a.data
    return encode_frame(bytes(body))


# --- request decoding (console side, used by the simulator) ------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    commands: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame the console could not take (bad checksum, broken escape, truncated command)."""

    raw: bytes
    reason: str


class RequestDecoder:
    """Streaming decoder of host frames: bytes outside F1…F2 are dropped, as a console does."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Request | BadFrame]:
        out: list[Request | BadFrame] = []
        self._buf += data
        while True:
            start = self._buf.find(bytes([START]))
            if start < 0:
                self._buf.clear()
                return out
            del self._buf[:start]
            # A start flag before the stop flag means the earlier frame was cut short.
            nxt = self._buf.find(bytes([START]), 1)
            stop = self._buf.find(bytes([STOP]), 1)
            if 0 < nxt < stop or (stop < 0 and nxt > 0):
                out.append(BadFrame(bytes(self._buf[:nxt]), "frame cut short by a new start flag"))
                del self._buf[:nxt]
                continue
            if stop < 0:
                if len(self._buf) >= MAX_FRAME:
                    out.append(BadFrame(bytes(self._buf), "no stop flag"))
                    self._buf.clear()
                return out
            raw = bytes(self._buf[: stop + 1])
            del self._buf[: stop + 1]
            try:
                contents, _ = split_frame(raw)
                out.append(Request(tuple(decode_commands(contents or b""))))
            except CodecError as exc:
                out.append(BadFrame(raw, str(exc)))
