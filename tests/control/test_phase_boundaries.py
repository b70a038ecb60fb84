"""Phase boundaries on time: the timerfd alarm the controller wakes by, and a phase's command on
the wire before its event is told (the listeners' work waits, the wire does not).

Real parts: a real timerfd on the running loop; the controller driving the simulated Woodway on a
real pty.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

import pytest

from control.rig import rig
from treadctl.control.alarm import Alarm
from treadctl.core.state import Event, Snapshot
from treadctl.drivers.trackmaster_codec import Op, Request, decode_digits
from treadctl.programs.library import parse_program

PHASE_S = 0.33  # off the 100 ms tick grid: a boundary met only at a tick would be up to 99 ms late
INCLINES = (0.0, 1.0, 0.0, 1.0, 0.0, 1.0)


def _program() -> str:
    phases = "".join(
        f'[[phases]]\nname = "p{i}"\nduration = {PHASE_S}\nwalk = "forward"\n'
        f"speed_kmh = 1.0\nincline_pct = {pct}\n"
        for i, pct in enumerate(INCLINES)
    )
    return f'name = "steps"\ntitle = "Short phases"\n{phases}'


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
async def test_alarm_rings_at_its_instant_never_early_and_not_once_cancelled() -> None:
    loop = asyncio.get_running_loop()
    rang: list[float] = []
    alarm = Alarm(lambda: rang.append(loop.time()))
    try:
        at = loop.time() + 0.03
        alarm.set(at)
        assert alarm.precise  # a timerfd, not asyncio's millisecond timeout
        async with asyncio.timeout(2):
            while not rang:
                await asyncio.sleep(0.005)
        assert at <= rang[0] < at + 0.05, rang[0] - at

        # a later setting replaces an earlier one
        alarm.set(loop.time() + 30.0)
        at = loop.time() + 0.02
        alarm.set(at)
        async with asyncio.timeout(2):
            while len(rang) < 2:
                await asyncio.sleep(0.005)
        assert at <= rang[1] < at + 0.05, rang[1] - at

        # cancelled: it does not ring, even well past its instant
        alarm.set(loop.time() + 0.01)
        alarm.cancel()
        quiet = asyncio.Event()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(quiet.wait(), 0.1)
        assert len(rang) == 2
    finally:
        alarm.close()
    alarm.set(loop.time())  # closed: nothing is armed and nothing fails
    assert not alarm.precise


async def test_each_phase_change_is_on_the_wire_on_time_before_its_event_is_told() -> None:
    program = parse_program(_program(), "test")
    async with rig() as r:
        r.controller.set_programs({**r.controller.programs, "steps": program})
        told: list[tuple[float, Event]] = []

        def listen(item: Snapshot | Event) -> None:
            if isinstance(item, Event) and item.type == "phase_started":
                told.append((time.monotonic(), item))

        r.controller.add_listener(listen)
        await r.program_to_end("steps", timeout=20)

    assert [e.details["incline_pct"] for _, e in told] == list(INCLINES)
    # the event's time: the schedule (first phase + whole phases) to within a few ms
    stamps = [e.ts for _, e in told]
    late = [(t - stamps[0] - k * PHASE_S) for k, t in enumerate(stamps)]
    assert all(-0.005 < x < 0.03 for x in late[1:]), late
    assert all(abs((b - a) - PHASE_S) < 0.03 for a, b in itertools.pairwise(stamps))

    # each change of incline reached the treadmill before the phase's event was told
    changes: list[float] = []
    last: float | None = None
    for req in r.sim.wire.requests:
        if isinstance(req.request, Request) and req.request.op == Op.SET_ELEVATION:
            pct = decode_digits(req.request.field) / 10
            if pct != last and told and req.at > told[0][0] + PHASE_S / 2:
                changes.append(req.at)
            last = pct
    assert len(changes) >= len(INCLINES) - 1, changes  # then 0 % as the program ends
    for arrived, (at, event) in zip(changes, told[1:], strict=False):
        assert arrived <= at, (event.details, at - arrived)
