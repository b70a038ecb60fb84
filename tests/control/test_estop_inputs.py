"""Rule 5, dedicated e-stop inputs: the button box simulator on one real pty, the simulated
treadmill on another, the real controller between them. Assertions are on the treadmill's side
of the wire (the bytes it received, its belt) and on what the controller refuses.

Modem lines run on pyserial's `loop://` (RTS→CTS, DTR→DSR inside pyserial) with a switch in
series on CTS. Limits: no kernel driver, no USB adapter and no electrical line is involved, so
this checks the reader's logic (sampling, the pulse test, a closed port), not an adapter's
timing; `dcd` on `loop://` is always on, which is exactly a miswired input.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from serial.urlhandler.protocol_loop import Serial as LoopSerial

from control.estop_rig import attached, box_config, healthy, wired
from control.rig import Rig, rig
from treadctl.config.models import EStopInputConfig
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.estop.inputs import ModemLinesInput, ModemPort
from treadctl.sim.estop_box import SimulatedButtonBox

FWD, BACK = WalkDirection.FORWARD, WalkDirection.BACKWARD


def mode(r: Rig) -> Mode:
    return r.controller.mode  # read through a call: mypy would keep the narrowed mode otherwise


async def stop_at(r: Rig, t0: float) -> float:
    """When the treadmill first received the stop opcode at or after t0 (waiting for it: the
    simulator reads its pty on the next turn of the event loop)."""

    def first() -> float | None:
        return next(
            (
                x.at
                for x in r.sim.wire.requests
                if x.at >= t0 and getattr(x.request, "op", None) == Op.STOP
            ),
            None,
        )

    await r.until(lambda: first() is not None, 1, "stop opcode on the wire")
    at = first()
    assert at is not None
    return at


async def test_rule5_input_press_latches_release_keeps_it_and_reset_waits_for_release(
    tmp_path: Path,
) -> None:
    link = tmp_path / "box"
    async with (
        rig() as r,
        SimulatedButtonBox(link=link) as box,
        attached(r, wired(r, box_config(link))) as item,
    ):
        await healthy(r, item)
        assert (await r.run(c.ManualSet(2.0, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.0, 10, "reverse at speed")
        t0 = time.monotonic()
        box.press()
        await r.mode(Mode.ESTOP, 1)
        assert await stop_at(r, t0) - t0 < 0.05  # the fast path, not the next tick
        assert all(w.kmh == 0 for w in r.wire_speeds() if w.at >= t0)
        estop = next(e for e in r.events if e.type == "estop")
        assert estop.details["cause"] == "estop_input"
        assert "box" in estop.details["detail"]
        await r.until(lambda: r.sim.belt.still, 3, "belt still")

        refused = await r.run(c.Reset())  # still pressed
        assert (refused.ok, refused.code) == (False, "estop_input")
        assert "box" in refused.message
        assert "pressed" in refused.message
        start = await r.run(c.ManualSet(1.0, FWD))
        assert (start.ok, start.code) == (False, "estop_input")

        box.release()
        await healthy(r, item)
        await asyncio.sleep(0.3)
        assert mode(r) is Mode.ESTOP  # released is not reset
        start = await r.run(c.ManualSet(1.0, FWD))
        assert (start.ok, start.code) == (False, "estop_latched")
        assert (await r.run(c.Reset())).ok
        assert mode(r) is Mode.IDLE
        state = r.snapshots[-1].state_dict()["estop_inputs"]
        assert state["box"] | {"detail": ""} == {
            "kind": "heartbeat",
            "healthy": True,
            "status": "ok",
            "detail": "",
        }
        assert not any(w.kmh != 0 for w in r.wire_speeds() if w.at >= t0)


@pytest.mark.parametrize("fault", ["silence", "bad_crc", "noise", "unplug"])
async def test_rule5_input_silence_garbage_and_unplug_each_latch_estop(
    tmp_path: Path, fault: str
) -> None:
    link = tmp_path / "box"
    async with (
        rig() as r,
        SimulatedButtonBox(link=link) as box,
        attached(r, wired(r, box_config(link, timeout_s=0.3))) as item,
    ):
        await healthy(r, item)
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed")
        t0 = time.monotonic()
        match fault:
            case "silence":
                box.silent = True
            case "bad_crc":
                box.bad_crc = True
            case "noise":
                box.send_garbage(b"HB 12 R*00\nxx\x00\xff\n")
            case "unplug":
                box.unplug()
        await r.mode(Mode.ESTOP, 1.5)
        expected = {
            "silence": "silent",
            "bad_crc": "garbage",
            "noise": "garbage",
            "unplug": "disconnected",
        }
        seen = [e.details["status"] for e in r.events if e.type == "estop_input"]
        assert expected[fault] in seen  # (noise is followed by good lines: waiting again)
        stopped = await stop_at(r, t0)
        assert next(e for e in r.events if e.type == "estop").details["cause"] == "estop_input"
        await r.until(lambda: r.sim.belt.still, 3, "belt still")
        if fault == "silence":
            assert stopped - t0 >= 0.3 - 0.11  # after the timeout, not before
        if fault == "unplug":  # comes back on a new pty: healthy again, then reset works
            box.replug()
            await healthy(r, item)
            assert (await r.run(c.Reset())).ok


async def test_start_refused_while_an_input_is_missing_with_the_reason(tmp_path: Path) -> None:
    link = tmp_path / "box"  # nothing there yet: the adapter is not plugged in
    async with rig() as r, attached(r, wired(r, box_config(link))) as item:
        await r.until(lambda: "cannot open" in item.health().detail, 2, "open failed")
        refused = await r.run(c.ManualSet(1.0, FWD))
        assert (refused.ok, refused.code) == (False, "estop_input")
        assert "e-stop input box is not healthy" in refused.message
        assert "cannot open" in refused.message
        assert mode(r) is Mode.IDLE  # never heard: nothing to latch
        async with SimulatedButtonBox(link=link):
            await healthy(r, item)
            assert (await r.run(c.ManualSet(1.0, FWD))).ok
            await r.until(lambda: r.sim.belt.speed_kmh > 0.3, 5, "belt started")
            assert (await r.run(c.Stop())).ok
            await r.mode(Mode.IDLE, 10)
    assert all(w.kmh >= 0 for w in r.wire_speeds())


class SwitchedLoop(LoopSerial):
    """pyserial's loop:// with a normally-closed switch in series between RTS and CTS."""

    switch_closed = True

    @property
    def cts(self) -> bool:
        return bool(super().cts) and self.switch_closed


async def test_rule5_modem_lines_loop_open_and_port_closed_latch_estop() -> None:
    ports: list[SwitchedLoop] = []

    def opener(url: str) -> ModemPort:
        ports.append(SwitchedLoop(url))
        return ports[-1]

    config = EStopInputConfig(
        name="mushroom", kind="modem-lines", port="loop://", pulse_test_s=0.1, reconnect_s=0.1
    )
    async with rig() as r:
        item = ModemLinesInput(
            config, lambda h, trip: r.controller.estop_input(h, trip=trip), opener=opener
        )
        async with attached(r, item):
            await healthy(r, item)
            await asyncio.sleep(0.35)  # pulse tests run and do not trip a sound loop
            assert mode(r) is Mode.IDLE
            assert (await r.run(c.ManualSet(1.5, FWD))).ok
            await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed")
            t0 = time.monotonic()
            ports[-1].switch_closed = False  # the mushroom is pressed
            await r.mode(Mode.ESTOP, 1)
            assert await stop_at(r, t0) - t0 < 0.1  # one poll interval and the fast path
            assert item.health().status == "pressed"
            await r.until(lambda: r.sim.belt.still, 3, "belt still")
            assert (await r.run(c.Reset())).code == "estop_input"
            ports[-1].switch_closed = True
            await healthy(r, item)
            assert mode(r) is Mode.ESTOP  # still latched
            assert (await r.run(c.Reset())).ok

            t1 = time.monotonic()
            ports[-1].close()  # the adapter vanishes
            await r.mode(Mode.ESTOP, 1)
            await stop_at(r, t1)
            assert item.health().status == "disconnected"
            await healthy(r, item)  # reopened (a new loop://)
            assert len(ports) >= 2


async def test_modem_lines_an_input_that_ignores_the_output_is_miswired() -> None:
    # DCD on loop:// is always on: the pulse test must notice it does not follow RTS.
    config = EStopInputConfig(
        name="mushroom", kind="modem-lines", port="loop://", input="dcd", pulse_test_s=0.1
    )
    async with rig() as r:
        item = wired(r, config)
        async with attached(r, item):
            await r.until(lambda: item.health().status == "miswired", 2, "miswired")
            await r.mode(Mode.ESTOP, 1)
            assert "dcd stays on" in item.health().detail
            assert (await r.run(c.ManualSet(1.0, FWD))).code == "estop_input"
