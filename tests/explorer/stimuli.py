"""What the world does to the controller, drawn from a seeded random stream.

A stimulus is a label (for the trace) and a synchronous action. Being synchronous, any of them
can also be fired from inside a driver exchange (the world schedules it into the exchange's
delay), which is where the races between the e-stop paths and the controller's awaits live.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from treadctl.core import commands as cmd
from treadctl.core.commands import Command
from treadctl.core.device import WalkDirection
from treadctl.core.program import Program
from treadctl.core.safety import EStopCause, SafetyRules
from treadctl.core.state import InputHealth, Mode

INPUTS = ("button-box", "mushroom")
UNHEALTHY = ("pressed", "silent", "garbage", "miswired", "disconnected", "waiting")


@dataclass(frozen=True, slots=True)
class Stimulus:
    label: str
    run: Callable[[], None]


class World(Protocol):
    """What the stimuli act on: the controller's public surface and the treadmill's side."""

    rules: SafetyRules
    programs: Mapping[str, Program]

    def submit(self, command: Command) -> None: ...
    def estop_now(self, cause: EStopCause) -> None: ...
    def estop_awaited(self, cause: EStopCause) -> None: ...
    def estop_input(self, health: InputHealth, *, trip: bool) -> None: ...
    def pull_key(self, for_s: float) -> None: ...
    def unplug(self, for_s: float) -> None: ...
    def slip(self, factor: float, for_s: float) -> None: ...
    def later(self, delay_s: float, label: str, action: Callable[[], None]) -> None: ...


# How much likelier a stimulus is in a mode (default 1): a person resets after an e-stop and
# starts when idle, so the sessions get deep enough for their own races (the final stop, the
# phase changes) instead of the seed spending its steps knocking on a latched controller.
_BIAS: dict[Mode, dict[str, float]] = {
    Mode.IDLE: {
        "start": 2.5,
        "manual": 2.5,
        "pause": 0.2,
        "resume": 0.2,
        "skip": 0.2,
        "reset": 0.3,
    },
    Mode.RUNNING: {"start": 0.3, "pause": 2.0, "skip": 2.0, "reset": 0.3},
    Mode.PAUSED: {"start": 0.3, "resume": 3.0, "reset": 0.3},
    Mode.STOPPING: {"start": 0.5, "reset": 0.5, "wait": 2.0},
    Mode.ESTOP: {"reset": 4.0, "start": 0.5, "manual": 0.5, "pause": 0.2, "resume": 0.2},
    Mode.FAULT: {"reset": 3.0, "start": 0.5, "manual": 0.5, "pause": 0.2, "resume": 0.2},
}


class Stimuli:
    def __init__(self, rng: random.Random, world: World) -> None:
        self.rng = rng
        self.world = world
        rules = world.rules
        hr = rules.heart_rate_max_bpm is not None
        deadman = rules.deadman_s > 0
        table: list[tuple[str, float, Callable[[], Stimulus]]] = [
            ("start", 9, self.start_program),
            ("manual", 9, self.manual_set),
            ("pause", 3, self.simple(cmd.Pause())),
            ("resume", 3, self.simple(cmd.Resume())),
            ("skip", 2, self.simple(cmd.Skip())),
            ("stop", 5, self.simple(cmd.Stop())),
            ("reset", 9, self.simple(cmd.Reset())),
            ("heart_rate", 8 if hr else 1, self.heart_rate),
            ("heartbeat", 8 if deadman else 1, self.simple(cmd.Heartbeat())),
            ("broker", 3, self.broker),
            ("flood", 2, self.flood),
            *(("estop", weight, maker) for weight, maker in self.estop_sources()),
            ("key", 1, self.key),
            ("cable", 1, self.cable),
            ("slip", 0.7, self.belt_slip),
            ("wait", 6, self.wait),
        ]
        self._makers = [maker for _, _, maker in table]
        self._weights = {
            mode: [w * _BIAS[mode].get(name, 1.0) for name, w, _ in table] for mode in Mode
        }

    def pick(self, mode: Mode) -> Stimulus:
        return self.rng.choices(self._makers, self._weights[mode])[0]()

    def injectable(self) -> Stimulus:
        """One to fire inside a driver exchange: mostly the safety paths, sometimes anything."""
        if self.rng.random() < 0.7:
            makers = [m for _, m in self.estop_sources()]
            return self.rng.choice(makers)()
        return self.pick(Mode.RUNNING)

    # --- the session -----------------------------------------------------------------------------

    def simple(self, command: Command) -> Callable[[], Stimulus]:
        return lambda: Stimulus(f"submit {command!r}", lambda: self.world.submit(command))

    def start_program(self) -> Stimulus:
        rng = self.rng
        programs = self.world.programs
        name = "no-such-program" if rng.random() < 0.03 else rng.choice(sorted(programs))
        parameters: dict[str, float] = {}
        program = programs.get(name)
        if program is not None:
            for key, spec in sorted(program.parameters.items()):
                roll = rng.random()
                if roll < 0.75:
                    parameters[key] = round(rng.uniform(spec.min, spec.max), 2)
                elif roll < 0.85:
                    parameters[key] = round(spec.max + rng.uniform(0.1, 2.0), 2)  # refused
            if rng.random() < 0.03:
                parameters["no_such_parameter"] = 1.0
        return self._command(cmd.Start(name, parameters))

    def manual_set(self) -> Stimulus:
        rng = self.rng
        walk = rng.choice(list(WalkDirection))
        speed = round(rng.uniform(0.0, 3.4 if walk is WalkDirection.BACKWARD else 6.4), 2)
        incline = round(rng.choice([0.0, 0.0, rng.uniform(0.0, 12.0)]), 1)
        return self._command(cmd.ManualSet(speed, walk, incline))

    def _command(self, command: Command) -> Stimulus:
        return Stimulus(f"submit {command!r}", lambda: self.world.submit(command))

    # --- safety inputs ---------------------------------------------------------------------------

    def heart_rate(self) -> Stimulus:
        rng = self.rng
        limit = self.world.rules.heart_rate_max_bpm or 180
        roll = rng.random()
        if roll < 0.8:
            bpm = rng.randint(70, limit)
        elif roll < 0.95:
            bpm = rng.randint(limit + 1, 250)  # above the limit: an e-stop
        else:
            bpm = rng.choice([0, 19, 251, 400])  # refused out_of_range
        return self._command(cmd.HeartRate(bpm))

    def broker(self) -> Stimulus:
        return self._command(cmd.BrokerState(connected=self.rng.random() < 0.6))

    def flood(self) -> Stimulus:
        """What the MQTT bridge does when one read brings many messages: a burst of submits."""
        rng = self.rng
        count = rng.randint(65, 100) if rng.random() < 0.1 else rng.randint(2, 20)
        limit = self.world.rules.heart_rate_max_bpm or 180
        kinds: list[Command] = [
            cmd.HeartRate(rng.randint(70, limit)),
            cmd.Heartbeat(),
            cmd.BrokerState(connected=True),
            cmd.Pause(),  # not a safety input: it may be refused busy
        ]
        burst = [rng.choices(kinds, [3, 3, 3, 1])[0] for _ in range(count)]
        burst.append(cmd.BrokerState(connected=rng.random() < 0.7))

        def run() -> None:
            for command in burst:
                self.world.submit(command)

        return Stimulus(f"flood of {len(burst)} commands, last {burst[-1]!r}", run)

    def estop_sources(self) -> list[tuple[float, Callable[[], Stimulus]]]:
        return [
            (2.0, self.estop_now),
            (1.0, self.estop_submitted),
            (0.8, self.estop_awaited),
            (1.5, self.estop_input),
        ]

    def estop_now(self) -> Stimulus:
        cause = self.rng.choice(list(EStopCause))
        return Stimulus(f"emergency_stop_now({cause})", lambda: self.world.estop_now(cause))

    def estop_submitted(self) -> Stimulus:
        return self._command(cmd.EmergencyStop(self.rng.choice(list(EStopCause)), "explorer"))

    def estop_awaited(self) -> Stimulus:
        cause = self.rng.choice(list(EStopCause))
        return Stimulus(f"emergency_stop({cause}) task", lambda: self.world.estop_awaited(cause))

    def estop_input(self) -> Stimulus:
        """A dedicated input trips (pressed, silent, garbage...) or only turns unhealthy, and
        is healthy again a while later (released, reconnected)."""
        rng = self.rng
        name = rng.choice(INPUTS)
        trip = rng.random() < 0.6
        status = rng.choice(UNHEALTHY)
        bad = InputHealth(name, "heartbeat", status, f"explorer: {status}")
        ok = InputHealth(name, "heartbeat", "ok", "explorer: ok")
        for_s = round(rng.uniform(0.05, 3.0), 3)

        def run() -> None:
            self.world.estop_input(bad, trip=trip)
            self.world.later(
                for_s, f"estop_input({name} ok)", lambda: self.world.estop_input(ok, trip=False)
            )

        return Stimulus(f"estop_input({name} {status}, trip={trip}) for {for_s} s", run)

    # --- the treadmill's side --------------------------------------------------------------------

    # Each lasts a while, then the world undoes it (the key goes back in, the cable is plugged
    # back, the belt grips again): an outage that lasted for the rest of the seed would spend
    # its steps on nothing but reconnect attempts.

    def key(self) -> Stimulus:
        for_s = round(self.rng.uniform(0.1, 4.0), 3)
        return Stimulus(f"safety key pulled for {for_s} s", lambda: self.world.pull_key(for_s))

    def cable(self) -> Stimulus:
        for_s = round(self.rng.uniform(0.1, 4.0), 3)
        return Stimulus(f"cable unplugged for {for_s} s", lambda: self.world.unplug(for_s))

    def belt_slip(self) -> Stimulus:
        factor = round(self.rng.uniform(0.2, 0.8), 2)
        for_s = round(self.rng.uniform(0.5, 6.0), 3)
        return Stimulus(
            f"belt slips x{factor} for {for_s} s", lambda: self.world.slip(factor, for_s)
        )

    def wait(self) -> Stimulus:
        return Stimulus("nothing", _nothing)


def _nothing() -> None:
    """The stimulus of a step that only lets time pass."""
