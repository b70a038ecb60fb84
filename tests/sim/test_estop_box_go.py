"""The simulated button box's start button, as `treadctl sim --driver estop-box` drives it: a
GO line with a valid CRC on the pty, among its heartbeats, and nothing while it is silent."""

from __future__ import annotations

import contextlib
import os

import waiting

from treadctl.estop.protocol import LineError, parse
from treadctl.sim.estop_box import SimulatedButtonBox
from treadctl.sim.estop_box_console import HELP, apply


def read_lines(fd: int, buffer: bytearray) -> list[bytes]:
    with contextlib.suppress(BlockingIOError):  # nothing yet
        buffer.extend(os.read(fd, 4096))
    *lines, rest = bytes(buffer).split(b"\n")
    buffer[:] = rest
    return lines


async def test_go_puts_a_valid_go_line_on_the_box_line() -> None:
    assert "go " in HELP
    async with SimulatedButtonBox() as box:
        fd = os.open(box.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            buffer, seen = bytearray(), []
            reply = apply(box, "go")
            assert reply is not None
            assert reply.startswith("ok: ")

            def got_go() -> bool:
                seen.extend(read_lines(fd, buffer))
                return any(line.startswith(b"GO ") for line in seen)

            await waiting.until(got_go, timeout=2, what="a GO line")
            go = parse(next(line for line in seen if line.startswith(b"GO ")))
            assert (go.go, go.stop, go.pressed) == (True, False, False)
            for line in seen:  # every line the box sent is valid, GO and heartbeats alike
                try:
                    parse(line)
                except LineError as exc:
                    raise AssertionError(line) from exc

            box.silent = True
            sent = box.sent
            box.go()  # a silent box sends nothing, GO included
            assert box.sent == sent
        finally:
            os.close(fd)
