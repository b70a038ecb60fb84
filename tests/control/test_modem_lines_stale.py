"""Rule 5, a modem-lines e-stop input whose adapter stops answering: a line read that hangs, or
fails in a way nobody expected, must stop the belt like a press, never leave the input `ok`.

The controller drives the simulated treadmill on a real pty; the input runs on pyserial's
`loop://` with the CTS read replaced by one the test can make hang or raise (what a wedged
USB-serial driver or a bug in it does to TIOCMGET). Assertions are on the treadmill's side of
the wire and on the input's health.
"""

from __future__ import annotations

import sys
import threading
import time

from serial.urlhandler.protocol_loop import Serial as LoopSerial

from control.estop_rig import attached, healthy
from control.rig import Rig, rig
from control.test_estop_inputs import stop_at
from treadctl.config.models import EStopInputConfig
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.state import Mode
from treadctl.estop.inputs import ModemLinesInput, ModemPort

HANG_BOUND_S = 10.0  # a hung read is released by the test's cleanup long before this


class Adapter:
    """The test's hand on the USB adapter: make reading the input line hang or raise."""

    def __init__(self) -> None:
        self.hang = False
        self.released = threading.Event()
        self.error: Exception | None = None
        self.open_error: Exception | None = None
        self.ports: list[FaultyLoop] = []

    def opener(self, url: str) -> ModemPort:
        if self.open_error is not None:
            raise self.open_error
        self.ports.append(FaultyLoop(url, self))
        return self.ports[-1]

    def release(self) -> None:
        self.hang = False
        self.released.set()


class FaultyLoop(LoopSerial):
    """loop:// (RTS→CTS) whose CTS read hangs or raises when the adapter says so."""

    def __init__(self, url: str, adapter: Adapter) -> None:
        super().__init__(url)
        self.adapter = adapter

    @property
    def cts(self) -> bool:
        if self.adapter.error is not None:
            raise self.adapter.error
        if self.adapter.hang:
            self.adapter.released.wait(HANG_BOUND_S)  # TIOCMGET not coming back
        return bool(super().cts)


def mushroom(**extra: float) -> EStopInputConfig:
    return EStopInputConfig(
        name="mushroom", kind="modem-lines", port="loop://", reconnect_s=0.1, **extra
    )


def wired(r: Rig, adapter: Adapter, config: EStopInputConfig) -> ModemLinesInput:
    return ModemLinesInput(
        config, lambda h, trip: r.controller.estop_input(h, trip=trip), opener=adapter.opener
    )


def mode(r: Rig) -> Mode:
    return r.controller.mode  # read through a call: mypy would keep the narrowed mode otherwise


async def running(r: Rig) -> None:
    assert (await r.run(c.ManualSet(1.5, WalkDirection.FORWARD))).ok
    await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed")


async def test_a_line_read_that_hangs_is_silence_and_latches_estop() -> None:
    adapter = Adapter()
    config = mushroom()  # the default deadline, 0.5 s
    async with rig() as r:
        item = wired(r, adapter, config)
        try:
            async with attached(r, item):
                await healthy(r, item)
                await running(r)
                t0 = time.monotonic()
                adapter.hang = True  # the next TIOCMGET never returns
                await r.mode(Mode.ESTOP, 2)
                stopped = await stop_at(r, t0)
                print(f"read hung -> stop byte on the wire: {stopped - t0:.3f} s", file=sys.stderr)
                assert item.health().status == "silent"
                assert "timeout_s" in item.health().detail
                # not before the deadline (the last read was at most one poll before t0),
                # and soon after it: the check runs at the deadline, not at a later poll
                assert config.timeout_s - config.poll_interval_s - 0.02 <= stopped - t0
                assert stopped - t0 < config.timeout_s + 0.25
                estop = next(e for e in r.events if e.type == "estop")
                assert estop.details["cause"] == "estop_input"
                await r.until(lambda: r.sim.belt.still, 3, "belt still")
                assert (await r.run(c.Reset())).code == "estop_input"

                adapter.release()  # the read returns: samples resume and heal the input
                await healthy(r, item)
                assert mode(r) is Mode.ESTOP  # latched until reset
                assert (await r.run(c.Reset())).ok
        finally:
            adapter.release()  # never leave the poller thread blocked


async def test_an_unexpected_error_reading_the_line_latches_estop_and_the_input_recovers() -> None:
    adapter = Adapter()
    async with rig() as r:
        item = wired(r, adapter, mushroom())
        async with attached(r, item):
            await healthy(r, item)
            await running(r)
            t0 = time.monotonic()
            adapter.error = RuntimeError("usb-serial driver bug")  # none of the expected kinds
            await r.mode(Mode.ESTOP, 1)
            stopped = await stop_at(r, t0)
            assert stopped - t0 < 0.2  # the failure itself, not the silence deadline
            assert item.health().status == "disconnected"
            assert "RuntimeError: usb-serial driver bug" in item.health().detail
            await r.until(lambda: r.sim.belt.still, 3, "belt still")

            adapter.error = None  # a fresh open works again
            await healthy(r, item)
            assert len(adapter.ports) >= 2
            assert all(not p.is_open for p in adapter.ports[:-1])  # the failed one was closed
            assert (await r.run(c.Reset())).ok


async def test_an_unexpected_error_opening_the_port_is_retried_and_refuses_starts() -> None:
    adapter = Adapter()
    adapter.open_error = RuntimeError("adapter firmware confused")
    async with rig() as r:
        item = wired(r, adapter, mushroom())
        async with attached(r, item):
            await r.until(
                lambda: "RuntimeError: adapter firmware confused" in item.health().detail,
                2,
                "the open failure reported",
            )
            refused = await r.run(c.ManualSet(1.0, WalkDirection.FORWARD))
            assert (refused.ok, refused.code) == (False, "estop_input")
            adapter.open_error = None
            await healthy(r, item)  # tried again every reconnect_s
            assert mode(r) is Mode.IDLE  # never healthy before: nothing to latch
