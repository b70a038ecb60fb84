"""The held start's bookkeeping (control/start_gate.py), pure, on a fake clock: what confirms it,
when it runs out, what the state says meanwhile."""

from __future__ import annotations

from fakes import FakeClock
from treadctl.control.start_gate import OFF, StartGate, StartRule
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection

RULE = StartRule(required=True, buttons=("box",), timeout_s=30.0)
START = c.Start("backward-intervals", person="mrs-k")


def test_off_lets_every_start_through() -> None:
    gate = StartGate(OFF, FakeClock())
    assert not gate.needs_confirmation(START)
    assert gate.awaiting() is None


def test_a_held_start_counts_down_and_is_confirmed_only_by_a_start_button() -> None:
    clock = FakeClock()
    gate = StartGate(RULE, clock)
    assert gate.needs_confirmation(START)
    event, answer = gate.hold(START, wall=5.0)
    assert (event.type, event.ts, event.data["timeout_s"]) == ("start_pending", 5.0, 30.0)
    assert answer.ok
    assert answer.message == (
        "awaiting confirmation at the treadmill: press GO on the button box (box) to start "
        "backward-intervals within 30 s"
    )
    assert gate.take_confirmed(wall=5.1) is None  # not confirmed yet
    clock.advance(0.2)
    held = gate.awaiting()
    assert held is not None
    assert (held.expires_s, held.program, held.person) == (30, "backward-intervals", "mrs-k")
    clock.advance(10.0)
    later = gate.awaiting()
    assert later is not None
    assert later.expires_s == 20
    assert not gate.confirm("mushroom")  # an input that is not a start button
    assert gate.confirm("box")
    assert not gate.confirm("box")  # once
    clock.advance(60.0)
    assert gate.expire(wall=9.0) is None  # confirmed: it is carried out, not dropped
    taken = gate.take_confirmed(wall=9.0)
    assert taken is not None
    command, confirmed = taken
    assert command is START
    assert confirmed.type == "start_confirmed"
    assert not gate.holding
    assert not gate.needs_confirmation(START)  # the confirmed one, being carried out
    assert gate.needs_confirmation(c.Start("backward-intervals"))  # any other start
    gate.released()
    assert gate.needs_confirmation(START)


def test_unconfirmed_it_expires_once_and_late_go_does_nothing() -> None:
    clock = FakeClock()
    gate = StartGate(RULE, clock)
    gate.hold(c.ManualSet(1.0, WalkDirection.FORWARD), wall=1.0)
    clock.advance(29.9)
    assert gate.expire(wall=2.0) is None
    clock.advance(0.1)
    assert not gate.confirm("box")  # at the deadline: too late
    expired = gate.expire(wall=3.0)
    assert expired is not None
    assert (expired.type, expired.data["program"]) == ("start_expired", "manual")
    assert gate.expire(wall=3.0) is None
    assert gate.awaiting() is None
    assert not gate.confirm("box")


def test_cancel_says_why_and_with_nothing_held_says_nothing() -> None:
    gate = StartGate(RULE, FakeClock())
    assert gate.cancel(wall=1.0, why="stop command") is None
    gate.hold(START, wall=1.0)
    cancelled = gate.cancel(wall=2.0, why="stop command")
    assert cancelled is not None
    assert cancelled.data == {
        "program": "backward-intervals",
        "person": "mrs-k",
        "detail": "stop command",
    }
    assert not gate.holding


def test_required_with_no_button_holds_and_says_nothing_can_confirm() -> None:
    gate = StartGate(StartRule(required=True), FakeClock())
    assert gate.needs_confirmation(START)
    gate.hold(START, wall=1.0)
    held = gate.awaiting()
    assert held is not None
    assert "no start button" in held.detail
    assert not gate.confirm("box")
