"""The scripted driver keeps the Driver contract the explorer relies on, and records what the
fault-stop invariant reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from explorer.driver import Exchange, Op, Outcome, ScriptedDriver
from explorer.vloop import VirtualTimeLoop
from treadctl.core.device import BeltDirection
from treadctl.drivers.errors import LinkLost, Rejected, TimedOut

T = TypeVar("T")


class FixedScript:
    """Answers every exchange after `delay_s`, except the outcomes queued for given ops."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s
        self.queued: dict[Op, list[Outcome]] = {}
        self.calls: list[str] = []

    def call(self, op: Op, speed_kmh: float | None) -> None:
        self.calls.append(op if speed_kmh is None else f"{op}({speed_kmh:g})")

    def exchange(self, op: Op, link_up: bool) -> Exchange:
        queued = self.queued.get(op)
        if not link_up:
            return Exchange(self.delay_s, Outcome.LINK_LOST)
        return Exchange(self.delay_s, queued.pop(0) if queued else Outcome.ANSWER)

    def refused_halted(self, op: Op) -> None:
        self.calls.append(f"{op} refused: halted")


def on_virtual_time(
    test: Callable[[ScriptedDriver, FixedScript], Coroutine[Any, Any, T]], *, lax: bool = False
) -> T:
    loop = VirtualTimeLoop()
    script = FixedScript()

    async def main() -> T:
        driver = ScriptedDriver(script, loop.time, lax_start=lax)
        await driver.open()
        return await test(driver, script)

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_a_link_lost_is_remembered_until_a_stop_is_attempted() -> None:
    async def test(driver: ScriptedDriver, script: FixedScript) -> None:
        script.queued[Op.SET_INCLINE] = [Outcome.LINK_LOST]
        with pytest.raises(LinkLost):
            await driver.set_incline(2.0)
        assert driver.unstopped_loss_at == pytest.approx(0.02)
        await asyncio.sleep(1.0)
        with pytest.raises(LinkLost):  # the port is gone, but the stop was attempted
            driver.plugged = False
            driver.stop_now()
        assert driver.unstopped_loss_at is None
        assert driver.stop_now_calls == 1

    on_virtual_time(test)


def test_a_failed_reconnect_is_not_a_new_loss_to_stop_for() -> None:
    async def test(driver: ScriptedDriver, _script: FixedScript) -> None:
        await driver.close()
        driver.plugged = False
        with pytest.raises(LinkLost):
            await driver.open()
        assert driver.unstopped_loss_at is None
        assert not driver.opened

    on_virtual_time(test)


def test_halted_refuses_moving_commands_until_released() -> None:
    async def test(driver: ScriptedDriver, script: FixedScript) -> None:
        driver.stop_now()
        with pytest.raises(Rejected, match="may not move"):
            await driver.start()
        with pytest.raises(Rejected, match="may not move"):
            await driver.set_speed(1.0, BeltDirection.FORWARD)
        await driver.set_speed(0.0, BeltDirection.FORWARD)  # a stop may always be sent
        driver.release()
        await driver.start()
        assert script.calls == [
            "open",
            "stop_now",
            "start",
            "start refused: halted",
            "set_speed(1)",
            "set_speed refused: halted",
            "set_speed(0)",
            "start",
        ]

    on_virtual_time(test)


@pytest.mark.parametrize("lax", [False, True])
def test_an_estop_during_the_start_exchange(lax: bool) -> None:
    """The contract: the start is refused (halted). A lax driver confirms it anyway, as drivers
    did before 6ba62c3; either way the belt stays stopped."""

    async def test(driver: ScriptedDriver, _script: FixedScript) -> str:
        loop = asyncio.get_running_loop()
        loop.call_later(0.005, driver.stop_now)
        try:
            await driver.start()
            answer = "confirmed"
        except Rejected as exc:
            answer = exc.code
        assert not (await driver.read_status()).running
        return answer

    assert on_virtual_time(test, lax=lax) == ("confirmed" if lax else "halted")


def test_the_treadmills_own_stops_are_reported_as_safety_stops() -> None:
    async def test(driver: ScriptedDriver, script: FixedScript) -> None:
        await driver.start()
        await driver.set_speed(1.0, BeltDirection.FORWARD)
        await asyncio.sleep(0.3)
        status = await driver.read_status()
        assert status.running
        assert not status.safety_stop
        driver.belt.pull_key()
        assert (await driver.read_status()).safety_stop
        # The watchdog: a started belt with no exchange for longer than 0.5 s.
        driver.belt.key_in = True
        await driver.start()
        await asyncio.sleep(0.6)
        status = await driver.read_status()
        assert not status.running
        assert status.safety_stop
        assert driver.belt.watchdog_trips == 1
        # A timed-out answer still moved the belt: the bytes arrived, the answer was lost.
        script.queued[Op.SET_INCLINE] = [Outcome.TIME_OUT]
        with pytest.raises(TimedOut):
            await driver.set_incline(3.0)
        assert driver.belt.incline_pct == 3.0

    on_virtual_time(test)
