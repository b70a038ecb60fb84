"""The button box's line format and both kinds' health logic, on a fake clock."""

from __future__ import annotations

import pytest

from fakes import FakeClock
from treadctl.estop.protocol import (
    MAX_LINE,
    HeartbeatMonitor,
    LineError,
    LoopMonitor,
    Status,
    crc8,
    go_line,
    heartbeat_line,
    parse,
    stop_line,
)


def test_crc8_is_crc8_smbus_and_lines_carry_it() -> None:
    assert crc8(b"123456789") == 0xF4  # the catalogue check value of CRC-8/SMBUS
    assert heartbeat_line(7, False) == b"HB 7 R*1B\n"
    assert stop_line(8) == b"STOP 8*8D\n"
    assert heartbeat_line(65536 + 3, True) == heartbeat_line(3, True)  # wraps at 16 bits


@pytest.mark.parametrize(
    "raw",
    [
        b"HB 7 R*1C",  # wrong CRC
        b"HB 7 X*00",  # unknown state
        b"hb 7 R*1B",  # case matters
        b"HB 7 R",  # no CRC
        b"HB 99999 R*" + f"{crc8(b'HB 99999 R'):02X}".encode(),  # sequence beyond 16 bits
        b"\x00\xff",
    ],
)
def test_bad_lines_are_refused(raw: bytes) -> None:
    with pytest.raises(LineError):
        parse(raw)


def test_good_lines_parse() -> None:
    assert parse(b"HB 7 R*1B\r").pressed is False  # a CR before the newline is fine
    assert parse(heartbeat_line(9, True)[:-1]).pressed is True
    line = parse(stop_line(8)[:-1])
    assert (line.seq, line.stop, line.pressed) == (8, True, True)


def status(m: HeartbeatMonitor | LoopMonitor) -> Status:
    return m.status  # read through a call: mypy would keep the narrowed status otherwise


def healthy_monitor(clock: FakeClock, n: int = 3) -> HeartbeatMonitor:
    m = HeartbeatMonitor(healthy_after=n, timeout_s=0.5)
    m.connected(clock())
    for seq in range(n):
        clock.advance(0.1)
        m.feed(heartbeat_line(seq, False), clock())
    assert status(m) is Status.OK
    return m


def test_healthy_only_after_n_good_released_heartbeats_in_a_row() -> None:
    clock = FakeClock()
    m = HeartbeatMonitor(healthy_after=3, timeout_s=0.5)
    change = m.connected(clock())
    assert change is not None
    assert (change.status, change.trip) == (Status.WAITING, False)
    m.feed(heartbeat_line(0, False) + heartbeat_line(1, False), clock())
    assert status(m) is Status.WAITING
    m.feed(b"junk\n", clock())  # garbage breaks the run ...
    assert status(m) is Status.GARBAGE
    m.feed(heartbeat_line(2, False) + heartbeat_line(3, False), clock())
    assert status(m) is Status.WAITING  # ... so it starts again
    (change,) = m.feed(heartbeat_line(4, False), clock())
    assert change.healthy
    assert not change.trip


def test_press_stop_garbage_and_silence_each_trip_once() -> None:
    clock = FakeClock()
    m = healthy_monitor(clock)
    (change,) = m.feed(stop_line(10), clock())
    assert (change.status, change.trip) == (Status.PRESSED, True)
    assert m.feed(heartbeat_line(11, True), clock()) == []  # still pressed: no second trip
    for seq in range(12, 15):
        m.feed(heartbeat_line(seq, False), clock())
    assert status(m) is Status.OK  # released: healthy again (the latch is the supervisor's)

    (change,) = m.feed(b"HB 15 R*00\n", clock())
    assert (change.status, change.trip) == (Status.GARBAGE, True)

    m = healthy_monitor(clock)
    clock.advance(0.49)
    assert m.check(clock()) is None
    clock.advance(0.02)
    silent = m.check(clock())
    assert silent is not None
    assert (silent.status, silent.trip) == (Status.SILENT, True)
    assert m.check(clock() + 1) is None  # reported once


def test_garbage_is_no_sign_of_life_and_a_stuck_sender_is_caught() -> None:
    clock = FakeClock()
    m = healthy_monitor(clock)
    clock.advance(0.3)
    m.feed(b"x" * (MAX_LINE + 1), clock())  # no newline in sight
    assert status(m) is Status.GARBAGE
    clock.advance(0.25)
    change = m.check(clock())  # 0.55 s since the last valid line
    assert change is not None
    assert change.status is Status.SILENT
    m = healthy_monitor(clock)
    (change,) = m.feed(heartbeat_line(2, False), clock())  # the last seq again
    assert (change.status, change.trip) == (Status.GARBAGE, True)


def test_a_closed_port_trips_but_a_port_never_opened_does_not() -> None:
    clock = FakeClock()
    m = HeartbeatMonitor(healthy_after=2)
    assert m.disconnected("cannot open /dev/ttyACM0") is not None
    assert status(m) is Status.DISCONNECTED  # at start-up: unhealthy, nothing to trip
    m = healthy_monitor(clock)
    change = m.disconnected("end of file")
    assert change is not None
    assert change.trip


def test_loop_monitor_open_trips_and_n_closed_samples_heal() -> None:
    m = LoopMonitor(healthy_after=3)
    m.connected()
    for _ in range(3):
        m.sample(True)
    assert status(m) is Status.OK
    change = m.sample(False)
    assert change is not None
    assert (change.status, change.trip) == (Status.PRESSED, True)
    m.sample(True)
    m.sample(True)
    assert status(m) is Status.WAITING
    m.sample(False)  # bounce: the run starts again
    for _ in range(2):
        m.sample(True)
    assert status(m) is Status.WAITING
    m.sample(True)
    assert status(m) is Status.OK
    change = m.miswired("cts stays on")
    assert change is not None
    assert change.trip


def test_loop_monitor_a_line_not_read_within_the_timeout_is_silent_and_trips() -> None:
    clock = FakeClock()
    m = LoopMonitor(healthy_after=2, timeout_s=0.5)
    assert m.check(clock(), None) is None  # still opening: nothing due
    m.connected()
    read_at = clock()
    clock.advance(0.49)
    assert m.check(clock(), read_at) is None  # within the deadline
    clock.advance(0.01)
    change = m.check(clock(), read_at)
    assert change is not None
    assert (change.status, change.trip) == (Status.SILENT, True)  # waiting counts: it trips
    assert "timeout_s" in change.detail
    clock.advance(1.0)
    assert m.check(clock(), read_at) is None  # once: no new event while it stays silent
    m.sample(True)
    m.sample(True)  # reads coming back heal it like any fault
    assert status(m) is Status.OK
    read_at = clock()
    clock.advance(0.6)
    change = m.check(clock(), read_at)
    assert change is not None
    assert change.trip


def test_loop_monitor_a_lost_port_is_not_also_silent() -> None:
    clock = FakeClock()
    m = LoopMonitor(healthy_after=2, timeout_s=0.5)
    m.connected()
    m.disconnected("port gone")
    assert m.check(clock() + 5, clock()) is None  # the port's own status says why


def test_go_lines_carry_a_crc_and_parse_as_the_start_button() -> None:
    assert go_line(9) == b"GO 9*" + f"{crc8(b'GO 9'):02X}".encode() + b"\n"
    line = parse(go_line(9)[:-1])
    assert (line.seq, line.go, line.stop, line.pressed) == (9, True, False, False)
    for bad in (b"GO 9*00", b"GO*00", b"go 9*" + go_line(9)[5:7], b"GO 9 R*00", b"GO 70000*00"):
        with pytest.raises(LineError):
            parse(bad)


def test_go_counts_only_from_a_healthy_box_and_once() -> None:
    clock = FakeClock()
    m = healthy_monitor(clock)
    assert m.feed(go_line(3), clock()) == []  # no health change: a GO is alive, not a heartbeat
    assert m.take_go()
    assert not m.take_go()  # taken
    clock.advance(0.4)
    m.feed(go_line(4), clock())
    clock.advance(0.4)
    assert m.check(clock()) is None  # 0.8 s since the heartbeat, 0.4 s since the GO: alive
    assert m.take_go()

    waiting = HeartbeatMonitor(healthy_after=3)
    waiting.connected(clock())
    waiting.feed(heartbeat_line(0, False) + go_line(1), clock())
    assert not waiting.take_go()  # not healthy yet


@pytest.mark.parametrize(
    "after",
    [
        b"HB 4 R*00\n",  # garbage right after the GO
        stop_line(4),  # the stop button
        heartbeat_line(4, True),  # a heartbeat saying pressed
        go_line(3),  # the GO again with the same number: a stuck sender
    ],
)
def test_go_followed_by_trouble_in_the_same_bytes_counts_for_nothing(after: bytes) -> None:
    clock = FakeClock()
    m = healthy_monitor(clock)
    changes = m.feed(go_line(3) + after, clock())
    assert [c.trip for c in changes] == [True]
    assert not m.take_go()
    for seq in range(10, 14):  # healthy again: the old GO is not kept for later
        m.feed(heartbeat_line(seq, False), clock())
    assert status(m) is Status.OK
    assert not m.take_go()


def test_noise_that_looks_like_go_is_garbage() -> None:
    clock = FakeClock()
    m = healthy_monitor(clock)
    (change,) = m.feed(b"GO 5*00\n", clock())
    assert (change.status, change.trip) == (Status.GARBAGE, True)
    assert not m.take_go()
