"""The button box's line format and the pure health logic of both input kinds (no I/O).

A heartbeat box sends `HB <seq> <R|P>*<crc>\n` at least every 200 ms and `STOP <seq>*<crc>\n`
the moment its button is pressed; a box with a second (start) button sends `GO <seq>*<crc>\n`
when that one is pressed, which confirms a remote start (docs/safety.md, supervised starts).
`<crc>` is CRC-8/SMBUS (poly 0x07, init 0) of every byte before the `*`, two upper-case hex
digits. Time comes in as arguments, so every rule is testable on a
fake clock.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

MAX_LINE = 32  # longer without a newline is garbage
SEQ_MODULO = 65536
_LINE = re.compile(rb"^(HB (\d{1,5}) ([RP])|STOP (\d{1,5})|GO (\d{1,5}))\*([0-9A-F]{2})$")


class Status(enum.StrEnum):
    OK = "ok"
    WAITING = "waiting"  # connected, not yet enough good samples in a row
    PRESSED = "pressed"  # a stop message, a pressed heartbeat, or the modem-line loop open
    SILENT = "silent"
    GARBAGE = "garbage"
    MISWIRED = "miswired"  # modem lines: the input does not follow the output
    DISCONNECTED = "disconnected"


# Entering one of these from a healthy or waiting state is an e-stop.
TRIPS = frozenset(
    {Status.PRESSED, Status.SILENT, Status.GARBAGE, Status.MISWIRED, Status.DISCONNECTED}
)


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS: polynomial 0x07, initial value 0, no reflection (check("123456789") = 0xF4)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode(body: str) -> bytes:
    raw = body.encode("ascii")
    return raw + b"*" + f"{crc8(raw):02X}".encode() + b"\n"


def heartbeat_line(seq: int, pressed: bool) -> bytes:
    return encode(f"HB {seq % SEQ_MODULO} {'P' if pressed else 'R'}")


def stop_line(seq: int) -> bytes:
    return encode(f"STOP {seq % SEQ_MODULO}")


def go_line(seq: int) -> bytes:
    return encode(f"GO {seq % SEQ_MODULO}")


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    stop: bool  # a STOP message
    pressed: bool  # STOP, or a heartbeat saying pressed
    go: bool = False  # a GO message: the start button


class LineError(ValueError):
    pass


def parse(raw: bytes) -> Line:
    """One line without its newline (a trailing CR is allowed)."""
    raw = raw.removesuffix(b"\r")
    m = _LINE.match(raw)
    if m is None:
        raise LineError(f"unparseable line {raw[:MAX_LINE]!r}")
    body = raw[: raw.rindex(b"*")]
    if int(m[6], 16) != crc8(body):
        raise LineError(f"bad CRC in {raw!r} (expected {crc8(body):02X})")
    if m[4] is not None:
        seq = int(m[4])
        line = Line(seq, stop=True, pressed=True)
    elif m[5] is not None:
        seq = int(m[5])
        line = Line(seq, stop=False, pressed=False, go=True)
    else:
        seq = int(m[2])
        line = Line(seq, stop=False, pressed=m[3] == b"P")
    if seq >= SEQ_MODULO:
        raise LineError(f"sequence number {seq} out of range in {raw!r}")
    return line


@dataclass(frozen=True, slots=True)
class Change:
    """A new status for an input; `trip` when it must stop the belt now."""

    status: Status
    detail: str
    trip: bool

    @property
    def healthy(self) -> bool:
        return self.status is Status.OK


@dataclass
class _Health:
    """What both kinds share: N good samples in a row make an input healthy again."""

    healthy_after: int
    status: Status = Status.DISCONNECTED
    detail: str = "not connected yet"
    good: int = 0

    def _set(self, status: Status, detail: str) -> Change | None:
        if status is self.status and detail == self.detail:
            return None
        trip = status in TRIPS and self.status not in TRIPS
        self.status, self.detail = status, detail
        if status is not Status.OK and status is not Status.WAITING:
            self.good = 0
        return Change(status, detail, trip)

    def _good(self, what: str) -> Change | None:
        self.good += 1
        if self.status is Status.OK:
            return None
        if self.good >= self.healthy_after:
            return self._set(Status.OK, f"{self.healthy_after} good {what} in a row")
        return self._set(Status.WAITING, f"waiting for {self.healthy_after} good {what} in a row")

    def disconnected(self, reason: str) -> Change | None:
        self.good = 0
        return self._set(Status.DISCONNECTED, reason)


@dataclass
class HeartbeatMonitor(_Health):
    """Health of a heartbeat input from the bytes it sends and the time between lines."""

    timeout_s: float = 0.5
    last_line_at: float | None = None
    last_seq: int | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _go: bool = False  # a GO line arrived while healthy and has not been taken

    def take_go(self) -> bool:
        """Whether the start button was pressed since the last call, the box healthy then and
        still: a GO followed by garbage, a press or a repeat in the same bytes counts for
        nothing."""
        go, self._go = self._go and self.status is Status.OK, False
        return go

    def connected(self, now: float) -> Change | None:
        self.last_line_at, self.last_seq, self.good = now, None, 0
        self._buffer.clear()
        return self._set(Status.WAITING, "port open, waiting for heartbeats")

    def feed(self, data: bytes, now: float) -> list[Change]:
        """Bytes as they arrive; the changes they cause, in order."""
        self._buffer.extend(data)
        changes: list[Change] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if (change := self._line(raw, now)) is not None:
                changes.append(change)
        if len(self._buffer) > MAX_LINE:
            self._buffer.clear()
            if (change := self._garbage(f"no newline within {MAX_LINE} bytes", now)) is not None:
                changes.append(change)
        return changes

    def _line(self, raw: bytes, now: float) -> Change | None:
        try:
            line = parse(raw)
        except LineError as exc:
            return self._garbage(str(exc), now)
        self.last_line_at = now
        repeated = line.seq == self.last_seq
        self.last_seq = line.seq
        if line.pressed or repeated:
            self._go = False  # whatever came before it in these bytes confirms nothing
        if line.pressed:
            return self._set(Status.PRESSED, "button pressed")  # a STOP line or a pressed HB
        if repeated:  # a stuck sender replaying its last line is not alive
            self.good = 0
            return self._set(Status.GARBAGE, f"sequence number {line.seq} repeated")
        if line.go:  # alive, but not a heartbeat: says nothing about the stop button
            self._go = self._go or self.status is Status.OK
            return None
        return self._good("heartbeats")

    def _garbage(self, why: str, now: float) -> Change | None:
        # Garbage is not a sign of life: the silence timer keeps running.
        del now
        self.good = 0
        self._go = False
        return self._set(Status.GARBAGE, why)

    def deadline(self) -> float | None:
        """When silence becomes an e-stop (None while disconnected or already silent)."""
        if self.last_line_at is None or self.status in (Status.DISCONNECTED, Status.SILENT):
            return None
        return self.last_line_at + self.timeout_s

    def check(self, now: float) -> Change | None:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return None
        assert self.last_line_at is not None
        self.good = 0
        return self._set(
            Status.SILENT, f"no valid line for {now - self.last_line_at:.2f} s (timeout_s)"
        )

    def disconnected(self, reason: str) -> Change | None:
        self.last_line_at = None
        return super().disconnected(reason)


@dataclass
class LoopMonitor(_Health):
    """Health of a modem-lines input: the normally-closed loop sampled at a fixed interval."""

    timeout_s: float = 0.5

    def connected(self) -> Change | None:
        self.good = 0
        return self._set(Status.WAITING, "port open, reading the loop")

    def check(self, now: float, last_read_at: float | None) -> Change | None:
        """A line read that has not come back within `timeout_s` (a hung adapter or driver) is
        silence: without readings a pressed switch would go unseen."""
        if last_read_at is None or self.status in (Status.DISCONNECTED, Status.SILENT):
            return None
        quiet = now - last_read_at
        if quiet < self.timeout_s:
            return None
        self.good = 0
        return self._set(
            Status.SILENT,
            f"input line not read for {quiet:.2f} s (timeout_s): the adapter or its driver hangs",
        )

    def sample(self, closed: bool) -> Change | None:
        if not closed:
            return self._set(Status.PRESSED, "loop open (switch pressed or wire broken)")
        return self._good("samples of a closed loop")

    def miswired(self, detail: str) -> Change | None:
        return self._set(Status.MISWIRED, detail)
