"""The controller's state under races and driver failures (issue 15), on a real pty.

Each test makes an e-stop or a driver error land at the worst moment (while an exchange is on
the wire) and checks both what the treadmill received and that the state the world sees agrees
with it: latched means `estop`, a failure means `fault` then `link_restored`, a reset works.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from control.rig import CAPS, FAST, Rig, driver_rig, with_rules
from treadctl.core import commands as c
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.safety import EStopCause, SafetyRules
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile
from treadctl.daemon.shutdown import stop_belt
from treadctl.drivers import trackmaster_codec as codec
from treadctl.drivers.errors import LinkLost
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Op

FWD = WalkDirection.FORWARD
PROFILE = DeviceProfile("woodway", CAPS, max_accel_mps2=0.15, countdown_s=1.0)


class HookedDriver(WoodwayDriver):
    """The real driver, calling `hooks[op]` (once) as that request goes on the wire."""

    def __init__(self, port: str) -> None:
        super().__init__(port, poll_interval_s=0.1)
        self.hooks: dict[int, Callable[[], None]] = {}
        self.fail_incline = False
        self.fail_stop = False

    async def _exchange(self, request: bytes, *, moves: bool = False) -> codec.Response:
        hook = self.hooks.pop(request[0], None)
        if hook is not None:
            hook()  # e.g. paho's callback delivering cmd/estop mid-exchange
        return await super()._exchange(request, moves=moves)

    async def set_incline(self, incline_pct: float) -> float:
        if self.fail_incline:
            self.fail_incline = False
            raise LinkLost("unplugged during the incline command")
        return await super().set_incline(incline_pct)

    async def stop(self) -> None:
        if self.fail_stop:
            self.fail_stop = False
            raise LinkLost("unplugged during the final stop")
        await super().stop()


@contextlib.asynccontextmanager
async def hooked_rig(rules: SafetyRules = FAST) -> AsyncIterator[tuple[Rig, HookedDriver]]:
    async with driver_rig("woodway", HookedDriver, PROFILE, rules) as r:
        assert isinstance(r.driver, HookedDriver)
        yield r, r.driver


@pytest.fixture
async def hooked() -> AsyncIterator[tuple[Rig, HookedDriver]]:
    async with hooked_rig() as pair:
        yield pair


def press(r: Rig) -> Callable[[], None]:
    def hook() -> None:
        r.controller.emergency_stop_now(EStopCause.COMMAND, "pressed mid-exchange")

    return hook


def moving_speeds_since(r: Rig, t0: float) -> list[float]:
    return [w.kmh for w in r.wire_speeds() if w.at >= t0 and w.kmh != 0]


async def walking(r: Rig) -> None:
    """A manual session at 0.8 km/h, the belt at speed."""
    assert (await r.run(c.ManualSet(0.8, FWD))).ok
    await r.until(lambda: r.sim.belt.speed_kmh > 0.5, 5, "at speed")


async def next_tick(r: Rig) -> None:
    ticked = r.controller.last_tick_at
    await r.until(lambda: r.controller.last_tick_at != ticked, 2, "a tick")


async def reset_and_walk(r: Rig) -> None:
    """The controller is usable again: reset is accepted and a new session moves the belt."""
    await r.until(lambda: r.sim.belt.still, 5, "belt still")
    reset = await r.run(c.Reset())
    assert reset.ok, reset
    assert r.controller.mode is Mode.IDLE
    await r.until(
        lambda: r.controller.supervisor.start_refusal(r.controller.clock()) is None, 3, "interlock"
    )
    started = await r.run(c.ManualSet(0.8, FWD))
    assert started.ok, started
    await r.until(lambda: r.sim.belt.speed_kmh > 0.3, 5, "the belt moving again")


async def test_an_estop_while_the_start_is_on_the_wire_wins(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, driver = hooked
    driver.hooks[Op.START_WATCHDOG] = press(r)
    t0 = time.monotonic()
    result = await r.run(c.ManualSet(1.0, FWD))
    assert not result.ok
    assert result.code == "estop_latched"
    assert r.controller.mode is Mode.ESTOP
    assert r.controller.supervisor.latched is not None
    assert r.controller.session is None
    assert r.controller.last_snapshot is not None
    assert r.controller.last_snapshot.mode is Mode.ESTOP
    await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte")
    assert moving_speeds_since(r, t0) == []
    assert (await r.run(c.Stop())).message == "nothing to stop (estop)"
    assert r.controller.mode is Mode.ESTOP
    await reset_and_walk(r)


async def test_an_estop_during_the_final_stop_exchange_stays_latched(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, driver = hooked
    await walking(r)
    driver.hooks[Op.AUTO_STOP] = press(r)
    assert (await r.run(c.Stop())).ok
    await r.until(lambda: Op.AUTO_STOP not in driver.hooks, 10, "the final stop on the wire")
    await r.until(lambda: "estop" in r.event_types(), 2, "the estop event")
    for _ in range(3):  # a few more ticks: nothing may move the state off `estop`
        await next_tick(r)
        assert r.controller.mode is Mode.ESTOP
    assert r.controller.supervisor.latched is not None
    finished = [e for e in r.events if e.type == "session_finished"]
    assert [e.details["ended"] for e in finished] == ["estop"]
    await reset_and_walk(r)


async def test_no_moving_speed_follows_an_estop_written_mid_exchange(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, driver = hooked
    await walking(r)
    driver.hooks[Op.SET_SPEED] = press(r)
    t0 = time.monotonic()
    assert (await r.run(c.ManualSet(1.2, FWD))).ok  # the next ramp step carries the press
    await r.mode(Mode.ESTOP, 3)
    await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte")
    await r.until(lambda: r.sim.belt.still, 5, "belt still")
    stop_at = next(q.at for q in r.sim.wire.requests if q.at >= t0 and _op(q) == Op.STOP)
    assert moving_speeds_since(r, stop_at) == []  # nothing moving after the stop, until reset
    await reset_and_walk(r)


def _op(request: object) -> int | None:
    inner = getattr(request, "request", None)
    return getattr(inner, "op", None)


async def test_link_lost_from_an_incline_command_is_a_fault_not_a_crash(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, driver = hooked
    await walking(r)
    driver.fail_incline = True
    t0 = time.monotonic()
    assert (await r.run(c.ManualSet(0.8, FWD, 2.0))).ok
    await r.mode(Mode.FAULT, 3)
    assert not r.task.done()
    await r.until(lambda: Op.STOP in r.ops_since(t0), 2, "the stop byte")
    await r.until(lambda: "link_restored" in r.event_types(), 5, "reconnected")
    assert r.controller.mode is Mode.FAULT  # restored, still latched until reset
    await reset_and_walk(r)


async def test_link_lost_from_the_final_stop_is_a_fault_not_a_crash(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, driver = hooked
    await walking(r)
    driver.fail_stop = True
    assert (await r.run(c.Stop())).ok
    await r.mode(Mode.FAULT, 10)
    assert not r.task.done()
    await r.until(lambda: "link_restored" in r.event_types(), 5, "reconnected")
    await reset_and_walk(r)


async def test_safety_inputs_are_applied_when_the_command_queue_is_full() -> None:
    async with hooked_rig(with_rules(broker_loss_s=0.3)) as (r, _):
        await _flood_then_safety_inputs(r)


async def _flood_then_safety_inputs(r: Rig) -> None:
    ctl = r.controller
    await walking(r)
    # A burst of untrusted commands in one go fills the queue before the controller runs.
    flood = [ctl.submit(c.Pause()) for _ in range(80)]
    assert any(f.done() and f.result().code == "busy" for f in flood)
    broker = ctl.submit(c.BrokerState(connected=False))
    heart = ctl.submit(c.HeartRate(90))
    beat = ctl.submit(c.Heartbeat())
    for future in (broker, heart, beat):
        assert future.done()
        assert future.result().ok, future.result()
    assert ctl.supervisor.broker_down_since is not None
    assert ctl.supervisor.heart_rate_bpm == 90
    await r.until(lambda: "stopping" in r.event_types(), 3, "the broker-loss stop")
    stopping = next(e for e in r.events if e.type == "stopping")
    assert stopping.details["reason"] == "broker_lost"
    await r.mode(Mode.IDLE, 10)
    await r.until(lambda: r.sim.belt.still, 5, "belt still")


async def test_reset_is_judged_on_a_fresh_reading_of_the_belt(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, _ = hooked
    assert (await r.run(c.ManualSet(1.5, FWD))).ok
    await r.until(lambda: r.sim.belt.speed_kmh > 1.2, 5, "at speed")
    r.controller.tick_s = 60.0  # no regular reads from here: the last one goes stale
    await r.controller.emergency_stop(EStopCause.COMMAND, "test")
    await r.until(lambda: r.sim.belt.still, 5, "belt still")
    status = r.controller.status
    assert status is not None
    assert status.speed_kmh > 0  # what the controller last saw: still moving
    assert status.belt is BeltDirection.FORWARD
    result = await r.run(c.Reset())
    assert result.ok, result
    assert r.controller.mode is Mode.IDLE


async def test_the_shutdown_stop_is_not_lost_to_a_full_queue(
    hooked: tuple[Rig, HookedDriver],
) -> None:
    r, _ = hooked
    await walking(r)
    flood = [r.controller.submit(c.Pause()) for _ in range(80)]
    assert any(f.done() and f.result().code == "busy" for f in flood)  # the queue is full
    t0 = time.monotonic()
    await stop_belt(r.controller, 10.0)
    assert r.controller.mode is Mode.IDLE
    assert "estop" not in r.event_types()  # a controlled stop, not the e-stop fallback
    assert Op.AUTO_STOP in r.ops_since(t0)
