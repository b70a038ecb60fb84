"""Supervised starts: a start sent from afar waits for the person at the treadmill (docs/safety.md).

While the rule holds, an accepted start (a program, or a manual `set` from idle) is not carried
out: it is held here, the belt stays still, and the state says what it waits for. The GO button
of a button box confirms it; then the controller judges it again as a new start (every start
rule applies at that moment) and carries it out. The time limit, a stop, an e-stop or a fault
drops it; a second start is refused while one waits. Pure: time comes from the injected clock.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from treadctl.config.models import Settings
from treadctl.core import commands as cmd
from treadctl.core.clock import Clock
from treadctl.core.commands import Result
from treadctl.core.state import Event, Snapshot

StartCommand = cmd.Start | cmd.ManualSet


@dataclass(frozen=True, slots=True)
class StartRule:
    """`buttons`: the e-stop inputs whose GO confirms a start when one is `required`."""

    required: bool = False
    buttons: tuple[str, ...] = ()
    timeout_s: float = 60.0
    why: str = "no confirmation configured"


OFF = StartRule()


def start_rule(settings: Settings) -> StartRule:
    """The rule `settings` ask for. `required` with no button passes validation only through a
    reload that adds the box (inputs need a restart): starts then wait for what cannot come,
    closed rather than open, until the restart."""
    safety, buttons = settings.safety, settings.start_buttons
    if safety.start_confirmation == "off":
        return StartRule(why="safety.start_confirmation = 'off'")
    if not buttons and safety.start_confirmation == "auto":
        return StartRule(why="auto: no e-stop box with start_button = true")
    where = f"GO on {', '.join(buttons)}" if buttons else "no start button until a restart"
    return StartRule(
        required=True,
        buttons=buttons,
        timeout_s=safety.start_confirmation_timeout_s,
        why=f"{safety.start_confirmation}: {where}",
    )


@dataclass(frozen=True, slots=True)
class Awaiting:
    """What a held start waits for: the `awaiting` of the state (docs/mqtt.md)."""

    confirm: str  # what confirms it: "button" (a box's GO)
    inputs: tuple[str, ...]
    program: str
    person: str | None
    expires_s: int  # whole seconds left, rounded up

    @property
    def detail(self) -> str:
        what = "a manual session" if self.program == "manual" else self.program
        if not self.inputs:
            return f"no start button is connected to confirm {what}: restart treadctl"
        return f"press GO on the button box ({', '.join(self.inputs)}) to start {what}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "confirm": self.confirm,
            "inputs": list(self.inputs),
            "program": self.program,
            "person": self.person,
            "detail": self.detail,
            "expires_s": self.expires_s,
        }


@dataclass(frozen=True, slots=True)
class GatedSnapshot(Snapshot):
    """The controller's snapshot with the held start, if any (the state's `awaiting`)."""

    awaiting: Awaiting | None = None

    def state_dict(self) -> dict[str, Any]:
        # Snapshot.state_dict by name: a slots dataclass has no zero-argument super().
        held = None if self.awaiting is None else self.awaiting.as_dict()
        return Snapshot.state_dict(self) | {"awaiting": held}

    def state_key(self) -> tuple[object, ...]:
        return (*Snapshot.state_key(self), self.awaiting)

    @classmethod
    def of(cls, snap: Snapshot, awaiting: Awaiting | None) -> GatedSnapshot:
        return cls(**{name: getattr(snap, name) for name in _SNAPSHOT_FIELDS}, awaiting=awaiting)


_SNAPSHOT_FIELDS = tuple(f.name for f in dataclasses.fields(Snapshot))  # once, not every tick


@dataclass(slots=True)
class _Held:
    command: StartCommand
    until: float
    confirmed: bool = False


def program_of(command: StartCommand) -> str:
    return command.program if isinstance(command, cmd.Start) else "manual"


class StartGate:
    """At most one held start, its deadline, and whether GO has confirmed it."""

    def __init__(self, rule: StartRule, clock: Clock) -> None:
        self.rule = rule
        self.clock = clock
        self._held: _Held | None = None
        self._releasing: StartCommand | None = None  # confirmed, being carried out

    @property
    def holding(self) -> bool:
        return self._held is not None

    def needs_confirmation(self, command: StartCommand) -> bool:
        """Whether accepted `command` must wait (not the confirmed one being carried out)."""
        return self.rule.required and command is not self._releasing

    def hold(self, command: StartCommand, wall: float) -> tuple[Event, Result]:
        """Hold `command`: its event, and the answer its sender gets."""
        timeout_s = self.rule.timeout_s
        self._held = _Held(command, self.clock() + timeout_s)
        awaiting = self.awaiting()
        assert awaiting is not None
        answer = Result.success(
            f"awaiting confirmation at the treadmill: {awaiting.detail} within {timeout_s:g} s"
        )
        return self._event("start_pending", wall, command, {"timeout_s": timeout_s}), answer

    def confirm(self, source: str) -> bool:
        """GO from input `source`: whether it confirmed a held start (the controller then wakes
        to carry it out). GO with nothing held, or from an input that is not a start button,
        does nothing."""
        held = self._held
        if held is None or source not in self.rule.buttons or held.confirmed:
            return False
        if self.clock() >= held.until:
            return False  # too late; the next tick drops it
        held.confirmed = True
        return True

    def take_confirmed(self, wall: float) -> tuple[StartCommand, Event] | None:
        """The confirmed start to carry out now, and its event; it is no longer held."""
        held = self._held
        if held is None or not held.confirmed:
            return None
        self._held = None
        self._releasing = held.command
        return held.command, self._event("start_confirmed", wall, held.command, {})

    def refused(self, confirmed: Event, result: Result, wall: float) -> Event:
        """The confirmed start was refused when carried out: why, as its answer would say."""
        details = confirmed.data | {"code": result.code, "message": result.message}
        return Event("start_refused", wall, None, details)

    def released(self) -> None:
        """The confirmed start has been carried out (or refused)."""
        self._releasing = None

    def expire(self, wall: float) -> Event | None:
        held = self._held
        if held is None or held.confirmed or self.clock() < held.until:
            return None
        self._held = None
        return self._event(
            "start_expired",
            wall,
            held.command,
            {"detail": f"not confirmed within {self.rule.timeout_s:g} s: the start is dropped"},
        )

    def cancel(self, wall: float, why: str) -> Event | None:
        held, self._held = self._held, None
        if held is None:
            return None
        return self._event("start_cancelled", wall, held.command, {"detail": why})

    def awaiting(self) -> Awaiting | None:
        held = self._held
        if held is None:
            return None
        left = max(0, math.ceil(held.until - self.clock()))
        return Awaiting(
            "button", self.rule.buttons, program_of(held.command), held.command.person, left
        )

    def _event(
        self, kind: str, wall: float, command: StartCommand, details: dict[str, Any]
    ) -> Event:
        base = {"program": program_of(command), "person": command.person}
        return Event(kind, wall, None, base | details)
