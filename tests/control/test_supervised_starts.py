"""Supervised starts (docs/safety.md): a start waits for GO on the button box. The box simulator
on one real pty, the simulated treadmill on another, the real controller between them; the
assertions are on the bytes the treadmill received: nothing that starts or moves the belt until
GO, then the usual start."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from control.estop_rig import start_button_box
from control.rig import Rig, rig
from treadctl.control.start_gate import StartRule
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.estop_box import SimulatedButtonBox

PROGRAM = "backward-intervals"
STARTS = {Op.START_WATCHDOG, Op.START, Op.SET_WEIGHT_OR_START}  # any opcode that runs the belt


def moves_since(r: Rig, t0: float) -> list[str]:
    """What the treadmill received since t0 that starts or speeds the belt (nothing, or why)."""
    starts = [f"opcode {op:#x}" for op in r.ops_since(t0) if op in STARTS]
    speeds = [f"speed {w.kmh} km/h" for w in r.wire_speeds() if w.at >= t0 and w.kmh != 0]
    return starts + speeds


def awaiting(r: Rig) -> dict[str, object] | None:
    held: dict[str, object] | None = r.snapshots[-1].state_dict()["awaiting"]
    return held


def mode(r: Rig) -> Mode:
    return r.controller.mode  # read through a call: mypy would keep the narrowed mode otherwise


def types_since(r: Rig, n: int) -> list[str]:
    return [e.type for e in r.events[n:]]


@contextlib.asynccontextmanager
async def supervised(
    tmp_path: Path, *, timeout_s: float = 60.0, required: bool = True
) -> AsyncIterator[tuple[Rig, SimulatedButtonBox]]:
    """A rig with a healthy box that has a start button; the rule on unless `required` is
    False (the box's GO is then heard but confirms nothing)."""
    rule = StartRule(required=True, buttons=("box",), timeout_s=timeout_s) if required else None
    async with rig() as r, start_button_box(r, tmp_path / "box", rule) as box:
        yield r, box


async def test_a_start_waits_for_go_with_the_belt_still_then_starts(tmp_path: Path) -> None:
    async with supervised(tmp_path) as (r, box):
        t0 = time.monotonic()
        answer = await r.run(c.Start(PROGRAM, person="mrs-k"))
        assert answer.ok, answer.message
        assert "awaiting confirmation" in answer.message
        assert "GO" in answer.message
        held = awaiting(r)
        assert held is not None
        assert held["confirm"] == "button"
        assert held["program"] == PROGRAM
        assert held["person"] == "mrs-k"
        assert held["inputs"] == ["box"]
        assert held["expires_s"] == 60
        assert "press GO on the button box (box)" in str(held["detail"])
        assert r.event_types()[-1] == "start_pending"

        await r.ticks(8)  # almost a second of polling: reads only, nothing that moves
        assert r.controller.mode is Mode.IDLE
        assert moves_since(r, t0) == []
        assert r.sim.belt.still
        assert Op.GET_STATE in r.ops_since(t0)  # the watchdog's reads went on meanwhile

        t_go = time.monotonic()
        box.go()
        await r.mode(Mode.RUNNING, 2)
        await r.until(lambda: r.sim.belt.speed_kmh != 0, 15, "belt moving")
        assert "start_confirmed" in r.event_types()
        assert r.event_types().index("start_confirmed") < r.event_types().index("session_started")
        first_start = next(
            x.at
            for x in r.sim.wire.requests
            if x.at >= t0 and getattr(x.request, "op", None) in STARTS
        )
        assert first_start >= t_go  # the belt was started by GO and by nothing before it
        assert awaiting(r) is None
        finished = [e for e in r.events if e.type == "session_started"][-1]
        assert finished.details["person"] == "mrs-k"


async def test_a_manual_set_is_a_start_and_waits_too(tmp_path: Path) -> None:
    async with supervised(tmp_path) as (r, box):
        t0 = time.monotonic()
        assert (await r.run(c.ManualSet(1.5, WalkDirection.FORWARD))).ok
        assert (awaiting(r) or {})["program"] == "manual"
        await r.ticks(5)
        assert moves_since(r, t0) == []
        box.go()
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed after GO")


async def test_unconfirmed_start_expires_and_a_late_go_does_nothing(tmp_path: Path) -> None:
    async with supervised(tmp_path, timeout_s=0.6) as (r, box):
        t0 = time.monotonic()
        assert (await r.run(c.Start(PROGRAM))).ok
        await r.until(lambda: "start_expired" in r.event_types(), 3, "start_expired")
        assert time.monotonic() - t0 >= 0.6
        expired = [e for e in r.events if e.type == "start_expired"][-1]
        assert "0.6 s" in expired.details["detail"]
        await r.ticks(2)
        assert awaiting(r) is None
        box.go()
        await r.ticks(5)
        assert r.controller.mode is Mode.IDLE
        assert moves_since(r, t0) == []
        assert "start_confirmed" not in r.event_types()


async def test_go_with_nothing_waiting_does_nothing(tmp_path: Path) -> None:
    async with supervised(tmp_path) as (r, box):
        t0 = time.monotonic()
        box.go()
        await r.ticks(3)
        assert (await r.run(c.Start(PROGRAM))).ok  # still held: the earlier GO is not kept
        await r.ticks(5)
        assert r.controller.mode is Mode.IDLE
        assert moves_since(r, t0) == []
        assert awaiting(r) is not None


async def test_garbage_on_the_box_line_never_confirms(tmp_path: Path) -> None:
    """A GO with a bad CRC, or noise, is garbage: it trips the e-stop like any garbage, which
    drops the held start; nothing moves, and a later GO does nothing."""
    for i, noise in enumerate((b"GO 9999*00\n", b"GO\n", b"G0 12*7A\n")):
        (tmp_path / str(i)).mkdir()
        async with supervised(tmp_path / str(i)) as (r, box):
            t0 = time.monotonic()
            assert (await r.run(c.Start(PROGRAM))).ok
            box.send_garbage(noise)
            await r.mode(Mode.ESTOP, 2)
            await r.until(lambda: "start_cancelled" in r.event_types(), 2, "start_cancelled")
            assert awaiting(r) is None
            box.go()
            await r.ticks(5)
            assert r.controller.mode is Mode.ESTOP
            assert moves_since(r, t0) == [], noise


async def test_an_estop_while_waiting_latches_and_drops_the_start(tmp_path: Path) -> None:
    async with supervised(tmp_path) as (r, box):
        t0 = time.monotonic()
        assert (await r.run(c.Start(PROGRAM))).ok
        n = len(r.events)
        await r.controller.emergency_stop()
        assert r.controller.mode is Mode.ESTOP
        assert Op.STOP in r.ops_since(t0)
        assert types_since(r, n)[:2] == ["start_cancelled", "estop"]
        cancelled = r.events[n]
        assert "emergency stop" in cancelled.details["detail"]
        box.go()
        await r.ticks(3)
        assert (await r.run(c.Reset())).ok
        box.go()  # after the reset too: the start is gone
        await r.ticks(5)
        assert mode(r) is Mode.IDLE
        assert moves_since(r, t0) == []


async def test_stop_cancels_and_a_second_start_is_refused_while_one_waits(tmp_path: Path) -> None:
    async with supervised(tmp_path) as (r, box):
        t0 = time.monotonic()
        assert (await r.run(c.Start(PROGRAM))).ok
        second = await r.run(c.ManualSet(1.0, WalkDirection.FORWARD))
        assert (second.ok, second.code) == (False, "start_pending")
        assert (awaiting(r) or {})["program"] == PROGRAM  # the first one still waits
        stopped = await r.run(c.Stop())
        assert stopped.ok
        assert "cancelled" in stopped.message
        assert r.event_types()[-1] == "start_cancelled"
        await r.ticks(1)
        assert awaiting(r) is None
        box.go()
        await r.ticks(5)
        assert moves_since(r, t0) == []
        assert r.controller.mode is Mode.IDLE


async def test_the_confirmed_start_is_judged_again_at_go(tmp_path: Path) -> None:
    """GO carries out the start as a new one: the box unhealthy at that moment (its button held
    down, released for a moment) refuses it with the usual code, as an event."""
    async with supervised(tmp_path) as (r, box):
        t0 = time.monotonic()
        assert (await r.run(c.Start(PROGRAM))).ok
        r.controller.confirm_start("elsewhere")  # not a start button: nothing
        await r.ticks(3)
        assert awaiting(r) is not None
        assert "start_confirmed" not in r.event_types()
        # Confirmed, then refused: a program the device no longer has.
        r.controller.set_programs({})
        box.go()
        await r.until(lambda: "start_refused" in r.event_types(), 2, "start_refused")
        refused = [e for e in r.events if e.type == "start_refused"][-1]
        assert refused.details["code"] == "unknown_program"
        assert refused.details["program"] == PROGRAM
        await r.ticks(3)
        assert moves_since(r, t0) == []
        assert awaiting(r) is None


async def test_with_the_rule_off_a_start_takes_effect_at_once(tmp_path: Path) -> None:
    async with supervised(tmp_path, required=False) as (r, _box):
        answer = await r.run(c.ManualSet(1.5, WalkDirection.FORWARD))
        assert answer.ok
        assert "awaiting" not in answer.message
        assert r.controller.mode is Mode.RUNNING
        assert awaiting(r) is None
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed, no GO needed")
