"""One seed's simulation: the real Controller on a scripted driver in virtual time, driven by
seeded stimuli, with the invariants checked after every step and on everything it emits.

Three random streams come from the seed, so a change in how often the controller talks to the
driver does not reshuffle what the world does: `world` (stimuli and waits), `wire` (each
exchange's delay and outcome) and `inject` (stimuli fired inside exchanges).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from explorer import invariants as inv
from explorer.driver import Exchange, Op, Outcome, ScriptedDriver
from explorer.rulewatch import RuleWatch
from explorer.stimuli import Stimuli, Stimulus
from explorer.vloop import ObservedFuture, StalledError, VirtualTimeLoop
from treadctl.control.controller import Controller
from treadctl.core.commands import Command, EmergencyStop
from treadctl.core.program import Program
from treadctl.core.safety import EStopCause, SafetyRules
from treadctl.core.state import Event, InputHealth, Snapshot
from treadctl.core.timeline import DeviceProfile
from treadctl.programs.library import builtin_programs

ANSWER_BOUND_S = 30.0  # virtual: a full queue of starts on a slow line drains well within it
FAULT_STOP_BOUND_S = 1.0  # virtual: LinkLost raised -> a stop attempted
READY_BOUND_S = 10.0
# Virtual: out of a session, the treadmill's belt (not the controller's idea of it) is still
# by then, however it was stopped: a controlled ramp, the e-stop, or its own watchdog.
BELT_STILL_BOUND_S = 10.0
BELT_STILL_KMH = 0.01
LINGER_S = 2.0
# The wall clock runs 1000x virtual time: session ids are the wall second plus a random suffix,
# and a distinct wall second per virtual millisecond keeps two ids from ever colliding, so the
# trace (which names sessions by order of appearance) stays the same run after run.
WALL_EPOCH = 1_700_000_000.0
WALL_PER_VIRTUAL_S = 1000.0
CAPS = ScriptedDriver.capabilities
CAUSES = frozenset(c.value for c in EStopCause)
SESSION_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{4}")  # as the controller makes them

ControllerType = Callable[..., Controller]


@functools.cache
def programs() -> Mapping[str, Program]:
    return {name: entry.program for name, entry in builtin_programs().items()}


@dataclass(frozen=True, slots=True)
class Weather:
    """The seed's conditions: how noisy the line is, how often the world strikes mid-exchange,
    and the safety settings (drawn within what the configuration allows, shortened where a
    rule would otherwise need minutes of virtual time to show)."""

    fault_rate: float
    slow_rate: float
    inject_rate: float
    time_scale: float
    reconnect_s: float
    lax_start: bool  # see ScriptedDriver.lax_start
    rules: SafetyRules

    @staticmethod
    def draw(rng: random.Random) -> Weather:
        rules = SafetyRules(
            speed_resolution_kmh=CAPS.speed_resolution_kmh,
            max_accel_mps2=rng.choice([0.15, 0.3, 0.5]),
            estop_interlock_s=rng.choice([0.3, 1.0, 3.0]),
            reversal_countdown_s=rng.choice([0.0, 1.0, 3.0]),
            broker_loss_s=rng.choice([1.0, 3.0, 10.0]),
            broker_loss_continue=rng.random() < 0.3,
            heart_rate_max_bpm=rng.choice([None, None, 150]),
            heart_rate_lost_s=rng.choice([2.0, 5.0]),
            hr_lost_stop_s=rng.choice([3.0, 10.0, 60.0]),
            deadman_s=rng.choice([0.0, 0.0, 2.0, 5.0]),
            max_session_s=rng.choice([7200.0, 7200.0, 20.0]),
        )
        return Weather(
            fault_rate=rng.choice([0.0, 0.005, 0.02, 0.05]),
            slow_rate=rng.choice([0.0, 0.05, 0.2]),
            inject_rate=rng.choice([0.0, 0.05, 0.2, 0.5]),
            time_scale=rng.choice([1.0, 30.0, 300.0]),
            reconnect_s=rng.choice([0.3, 1.0, 2.0]),
            lax_start=rng.random() < 0.25,
            rules=rules,
        )

    def describe(self) -> str:
        r = self.rules
        return (
            f"faults {self.fault_rate:g}, slow {self.slow_rate:g}, inject {self.inject_rate:g}, "
            f"time_scale {self.time_scale:g}, reconnect {self.reconnect_s:g} s"
            f"{', lax start' if self.lax_start else ''}; accel "
            f"{r.max_accel_mps2:g}, interlock {r.estop_interlock_s:g} s, countdown "
            f"{r.reversal_countdown_s:g} s, broker {r.broker_loss_s:g} s"
            f"{' continue' if r.broker_loss_continue else ''}, hr max {r.heart_rate_max_bpm}, "
            f"deadman {r.deadman_s:g} s, max session {r.max_session_s:g} s"
        )


@dataclass
class SeedResult:
    seed: int
    steps: int
    virtual_s: float
    violations: list[inv.Violation]
    trace_hash: str
    coverage: Counter[str] = field(default_factory=Counter)


@dataclass
class _Pending:
    label: str
    since: float


class Simulation:
    """Run with `run()`; `echo` gets every trace line as it is written (the verbose replay)."""

    def __init__(
        self,
        seed: int,
        steps: int,
        *,
        echo: Callable[[str], None] | None = None,
        controller_type: ControllerType = Controller,
    ) -> None:
        self.seed = seed
        self.steps = steps
        self.echo = echo
        self.controller_type = controller_type
        self.weather = Weather.draw(random.Random(f"{seed}:weather"))
        self.rules = self.weather.rules
        self.programs = programs()
        self.world_rng = random.Random(f"{seed}:world")
        self.wire_rng = random.Random(f"{seed}:wire")
        self.stimuli = Stimuli(self.world_rng, self)
        self.injected = Stimuli(random.Random(f"{seed}:inject"), self)
        self.violations: list[inv.Violation] = []
        self.coverage: Counter[str] = Counter()
        self.step = 0
        self.live = False  # between the controller's start and its teardown
        self.wire_faults = False  # the setup's own open() is answered cleanly
        self.modes = inv.ModeWatch()
        self.sessions = inv.SessionLedger()
        self._hash = hashlib.sha256()
        self._labels: dict[str, str] = {}
        self._pending: dict[int, _Pending] = {}
        self._answered: set[int] = set()
        self._numbers = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self.rule_watch = RuleWatch(self.rules)
        self.trace_hash = ""

    # --- running ---------------------------------------------------------------------------------

    def run(self) -> SeedResult:
        loop = VirtualTimeLoop()
        self.loop = loop
        loop.set_exception_handler(self._loop_error)
        try:
            loop.run_until_complete(self._main())
        except StalledError as exc:
            self.violate(inv.PROGRESS, str(exc))
        finally:
            self.live = False
            self._close(loop)
        return SeedResult(
            self.seed,
            self.step,
            loop.time(),
            self.violations,
            self.trace_hash or self._hash.hexdigest()[:16],
            self.coverage,
        )

    @staticmethod
    def _close(loop: VirtualTimeLoop) -> None:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except StalledError:
            pass  # already reported; what still spins is dropped with the loop
        finally:
            loop.close()

    async def _main(self) -> None:
        loop = self.loop
        self.note(f"seed {self.seed}: {self.weather.describe()}")
        self.driver = ScriptedDriver(self, loop.time, lax_start=self.weather.lax_start)
        await self.driver.open()
        self.wire_faults = True
        self.controller = self.controller_type(
            self.driver,
            profile=DeviceProfile(
                "woodway",
                CAPS,
                max_accel_mps2=min(self.rules.max_accel_mps2, 0.15),
                countdown_s=self.rules.reversal_countdown_s,
            ),
            rules=self.rules,
            programs=self.programs,
            clock=loop.time,
            wall=self._wall,
            tick_s=0.1,
            time_scale=self.weather.time_scale,
            reconnect_s=self.weather.reconnect_s,
        )
        self.controller.add_listener(self._on_item)
        self.live = True
        task = loop.create_task(self.controller.run(), name="explorer.controller")
        task.add_done_callback(self._controller_ended)
        await self._until_ready()
        for step in range(1, self.steps + 1):
            if self.violations:
                break
            self.step = step
            await self._one_step()
        if self.violations:
            await self._linger()
        else:
            await self._drain()
        self.live = False
        # The teardown cancels tasks, some in set order (the controller's e-stop tasks): its
        # trace lines would differ from run to run, so the hash ends here.
        self.trace_hash = self._hash.hexdigest()[:16]
        for (before, after), count in self.modes.edges.items():
            self.coverage[f"edge:{before}->{after}"] += count
        task.cancel()
        await asyncio.wait([task])
        for extra in self._tasks:
            extra.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _until_ready(self) -> None:
        deadline = self.loop.time() + READY_BOUND_S
        while not self.controller.ready.is_set() and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        if not self.controller.ready.is_set():
            self.violate(inv.ANSWER_BOUNDED, f"not ready after {READY_BOUND_S:g} s")

    async def _one_step(self) -> None:
        stimulus = self.stimuli.pick(self.controller.mode)
        self.note(stimulus.label)
        self.coverage["stimulus:" + stimulus.label.split("(")[0].split(" ")[0]] += 1
        self._perform(stimulus)
        if self.violations:
            return
        await asyncio.sleep(self._pick_wait())
        self.check()
        c = self.controller
        latched = c.supervisor.latched
        self.note(
            f"  -> {c.mode} latched={latched.cause if latched else '-'} "
            f"session={self._label(c.session.id if c.session else None)} "
            f"belt={self.driver.belt.speed_kmh:.2f}{self.driver.belt.direction.value[0]}"
        )

    def _perform(self, stimulus: Stimulus) -> None:
        try:
            stimulus.run()
        except Exception as exc:  # noqa: BLE001 - anything a public call raises is a finding
            self.violate(inv.NO_ESCAPE, f"{stimulus.label} raised {exc!r}")
        self.check()

    def _pick_wait(self) -> float:
        """Mostly short: zero (one loop turn) and milliseconds land inside exchanges; seconds
        let ramps, interlocks and grace times run out."""
        rng = self.world_rng
        roll = rng.random()
        if roll < 0.25:
            return 0.0
        if roll < 0.5:
            return rng.uniform(0.0, 0.02)
        if roll < 0.8:
            return rng.uniform(0.02, 0.3)
        if roll < 0.95:
            return rng.uniform(0.3, 3.0)
        return rng.uniform(3.0, 15.0)

    async def _linger(self) -> None:
        """After the first violation, let its consequences show (an exception on its way out of
        the controller, say) so the report names every invariant it broke."""
        await asyncio.sleep(LINGER_S)
        self.check()

    async def _drain(self) -> None:
        """Let every command still waiting get its answer (within the bound)."""
        self.step += 1
        self.note("drain: waiting for the answers still due")
        deadline = self.loop.time() + ANSWER_BOUND_S
        while self._pending and self.loop.time() <= deadline and not self.violations:
            await asyncio.sleep(0.25)
            self.check()

    # --- the invariants --------------------------------------------------------------------------

    def violate(self, invariant: str, detail: str) -> None:
        if any(v.invariant == invariant for v in self.violations):
            return
        detail = SESSION_ID.sub(lambda m: self._label(m.group()), detail)  # random suffixes
        violation = inv.Violation(invariant, self.step, self.loop.time(), detail)
        self.violations.append(violation)
        self.note("VIOLATION " + violation.line())

    def observe(self) -> None:
        """Mode and latch agree, and the mode only moved along an allowed edge."""
        c = self.controller
        problem = inv.latch_problem(c.mode, c.supervisor.latched)
        if problem is not None:
            self.violate(inv.LATCHED_MODE, problem)
        edge = self.modes.observe(c.mode)
        if edge is not None:
            self.violate(*edge)
        self.rule_watch.mode(c.mode, self.loop.time())

    def check(self) -> None:
        if not self.live:
            return
        self.observe()
        now = self.loop.time()
        if self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.since > ANSWER_BOUND_S:
                self.violate(
                    inv.ANSWER_BOUNDED,
                    f"{oldest.label} unanswered after {now - oldest.since:.1f} s",
                )
        lost = self.driver.unstopped_loss_at
        if lost is not None and now - lost > FAULT_STOP_BOUND_S:
            self.violate(
                inv.FAULT_STOPS,
                f"LinkLost raised at t={lost:.4f}, no stop attempted {now - lost:.2f} s later",
            )
        session = self.controller.session
        if self.sessions.open_id != (session.id if session else None):
            self.violate(
                inv.SESSIONS,
                f"the events leave session {self._label(self.sessions.open_id)} open, the "
                f"controller has {self._label(session.id if session else None)}",
            )
        overdue = self.rule_watch.overdue(now)
        if overdue is not None:
            self.violate(inv.RULE_FIRES, f"{overdue}, still {self.controller.mode}")
        since = self.rule_watch.out_of_session_since
        if since is not None and now - since > BELT_STILL_BOUND_S:
            belt = self.driver.belt
            belt.advance(now)
            if belt.speed_kmh > BELT_STILL_KMH:
                self.violate(
                    inv.BELT_STOPS,
                    f"the belt runs at {belt.speed_kmh:.2f} km/h {now - since:.1f} s into "
                    f"{self.controller.mode}",
                )

    def _controller_ended(self, task: asyncio.Task[Any]) -> None:
        if not self.live:
            return
        why = "was cancelled" if task.cancelled() else f"raised {task.exception()!r}"
        self.violate(inv.NO_ESCAPE, f"the controller task ended: it {why}")

    def _loop_error(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self.live:
            detail = f"{context.get('message')}: {context.get('exception')!r}"
            self.violate(inv.NO_ESCAPE, "unhandled in the event loop: " + detail)

    def _on_item(self, item: Snapshot | Event) -> None:
        if not self.live:
            return
        c = self.controller
        session = c.session.id if c.session else None
        if isinstance(item, Snapshot):
            self.coverage["snapshots"] += 1
            problem = inv.snapshot_problem(item, c.mode, session, c.supervisor.latched)
            if problem is not None:
                self.violate(inv.SNAPSHOT, problem)
        else:
            self._on_event(item)
        self.observe()

    def _on_event(self, event: Event) -> None:
        self.coverage["event:" + event.type] += 1
        details = ""
        if event.type in ("estop", "fault", "stopping", "session_finished"):
            keys = ("cause", "reason", "ended")
            details = " " + " ".join(str(event.details[k]) for k in keys if k in event.details)
        if event.type == "estop":
            cause = str(event.details.get("cause"))
            self.coverage["estop:" + cause] += 1
            if cause not in CAUSES:
                self.violate(inv.SNAPSHOT, f"estop event with unknown cause {cause!r}")
        self.note(f"  event {event.type} {self._label(event.session_id)}{details}")
        if event.type == "reset":
            self.modes.saw_reset()
        problem = self.sessions.event(event)
        if problem is not None:
            self.violate(inv.SESSIONS, problem)

    # --- the world's side: what the stimuli do (stimuli.World) -----------------------------------

    def submit(self, command: Command) -> None:
        self._numbers += 1
        number = self._numbers
        label = f"#{number} {type(command).__name__}"
        self.loop.observe_next_future(lambda result: self._answer(number, command, result))
        try:
            with self._at_once(f"submit({command!r})", check=isinstance(command, EmergencyStop)):
                future = self.controller.submit(command)
        finally:
            self.loop.observe_next_future(None)
        self.coverage["submitted"] += 1
        self.rule_watch.sent(command, self.controller.mode, self.loop.time())
        if number not in self._answered:
            self._pending[number] = _Pending(label, self.loop.time())
        observed = isinstance(future, ObservedFuture)

        def done(fut: asyncio.Future[Any]) -> None:
            self._pending.pop(number, None)
            if fut.cancelled():
                self.violate(inv.ANSWER_ONCE, f"{label} was cancelled, never answered")
            elif not observed:
                self.coverage["answers observed late"] += 1
                self._answer(number, command, fut.result())

        future.add_done_callback(done)

    def _answer(self, number: int, command: Command, result: Any) -> None:
        if number in self._answered:
            self.violate(inv.ANSWER_ONCE, f"#{number} {command!r} answered twice")
            return
        self._answered.add(number)
        self._pending.pop(number, None)
        code = getattr(result, "code", "?") or "ok"
        self.coverage[f"answer:{type(command).__name__}:{code}"] += 1
        self.note(f"  answer #{number} {type(command).__name__}: {code}")
        if not self.live:
            return
        c = self.controller
        problem = inv.answer_problem(command, result, c.mode, c.supervisor.latched)
        if problem is not None:
            self.violate(*problem)
        if type(command).__name__ == "Reset" and getattr(result, "ok", False):
            self.modes.saw_reset()
        self.observe()

    def _track(self, label: str, task: asyncio.Task[Any]) -> None:
        """An e-stop task must finish (within the answer bound) without an exception."""
        self._numbers += 1
        number = self._numbers
        self._pending[number] = _Pending(label, self.loop.time())

        def done(t: asyncio.Task[Any]) -> None:
            self._pending.pop(number, None)
            if self.live and not t.cancelled() and t.exception() is not None:
                self.violate(inv.NO_ESCAPE, f"{label} raised {t.exception()!r}")

        task.add_done_callback(done)

    def estop_now(self, cause: EStopCause) -> None:
        with self._at_once(f"emergency_stop_now({cause})"):
            task = self.controller.emergency_stop_now(cause, "explorer")
        self._track(f"emergency_stop_now({cause})", task)

    def estop_awaited(self, cause: EStopCause) -> None:
        task = self.loop.create_task(self.controller.emergency_stop(cause, "explorer"))
        self._tasks.append(task)
        self._track(f"emergency_stop({cause})", task)

    def estop_input(self, health: InputHealth, *, trip: bool) -> None:
        with self._at_once(f"estop_input({health.name}, trip=True)", check=trip):
            self.controller.estop_input(health, trip=trip)

    @contextlib.contextmanager
    def _at_once(self, what: str, *, check: bool = True) -> Iterator[None]:
        """The e-stop fast path: latched, and the stop handed to the driver, by the time the
        call returns (docs/safety.md), not on some later turn of the loop."""
        writes = self.driver.stop_now_calls
        yield
        if not check:
            return
        c = self.controller
        if c.supervisor.latched is None or c.mode not in inv.HALTED:
            self.violate(inv.ESTOP_AT_ONCE, f"{what} returned with mode {c.mode}, not latched")
        elif self.driver.stop_now_calls == writes:
            self.violate(inv.ESTOP_AT_ONCE, f"{what} returned without writing the stop")

    def pull_key(self, for_s: float) -> None:
        belt = self.driver.belt
        belt.advance(self.loop.time())
        belt.pull_key()
        self.later(for_s, "safety key back in", lambda: setattr(belt, "key_in", True))

    def unplug(self, for_s: float) -> None:
        self.driver.plugged = False
        self.later(for_s, "cable plugged back in", self._replug)

    def slip(self, factor: float, for_s: float) -> None:
        belt = self.driver.belt
        belt.slip = factor
        self.later(for_s, "belt grips again", lambda: setattr(belt, "slip", 1.0))

    def _replug(self) -> None:
        self.driver.plugged = True

    def later(self, delay_s: float, label: str, action: Callable[[], None]) -> None:
        def run() -> None:
            if self.live:
                self.note("  " + label)
                action()
                self.check()

        self.loop.call_later(delay_s, run)

    # --- the driver's script (driver.Script) -----------------------------------------------------

    def call(self, op: Op, speed_kmh: float | None) -> None:
        if not self.live:
            return
        self.coverage["call:" + op] += 1
        c = self.controller
        problem = inv.driver_call_problem(op, speed_kmh, c.mode, c.supervisor.latched)
        if problem is not None:
            self.violate(*problem)
        self.observe()

    def exchange(self, op: Op, link_up: bool) -> Exchange:
        if not self.wire_faults:
            return Exchange(0.002)
        rng = self.wire_rng
        weather = self.weather
        slow = rng.random() < weather.slow_rate
        delay = rng.uniform(0.02, 0.2) if slow else rng.uniform(0.001, 0.015)
        plan = Exchange(delay)
        if not link_up:
            plan = Exchange(rng.uniform(0.25, 0.75), Outcome.LINK_LOST)
        elif rng.random() < weather.fault_rate:
            outcome = rng.choices(list(Outcome)[1:], [0.15, 0.35, 0.3, 0.2])[0]
            if outcome is Outcome.TIME_OUT:
                plan = Exchange(rng.uniform(0.1, 0.3), outcome)
            elif outcome is Outcome.LINK_LOST:
                unplug = rng.random() < 0.5
                plan = Exchange(rng.uniform(0.25, 0.75), outcome, unplug=unplug)
                if unplug:
                    self.later(rng.uniform(0.5, 4.0), "cable plugged back in", self._replug)
            else:
                plan = Exchange(delay, outcome)
        self.coverage[f"wire:{op}:{plan.outcome}"] += 1
        # Reads come every tick; the rarer exchanges (start, the final stop, inclines) are
        # where an e-stop racing an await does harm, so they draw more injections.
        chance = weather.inject_rate * (0.1 if op is Op.READ else 1.0)
        if self.live and self.injected.rng.random() < chance:
            stimulus = self.injected.injectable()
            at = self.loop.time() + self.injected.rng.uniform(0.0, plan.delay_s)
            self.loop.call_at(at, self._fire, stimulus)
        self.note(f"  wire {op} -> {plan.outcome} in {plan.delay_s * 1000:.1f} ms")
        return plan

    def refused_halted(self, op: Op) -> None:
        self.note(f"  wire {op} refused: halted")

    def _fire(self, stimulus: Stimulus) -> None:
        if not self.live or self.violations:
            return
        self.coverage["injected"] += 1
        self.note(f"  inject {stimulus.label}")
        self._perform(stimulus)

    # --- the trace -------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        line = f"{self.step:4d} {self.loop.time():10.4f} {text}"
        self._hash.update(line.encode())
        if self.echo is not None:
            self.echo(line)

    def _label(self, session_id: str | None) -> str:
        if session_id is None:
            return "-"
        label = self._labels.get(session_id)
        if label is None:
            label = self._labels[session_id] = f"s{len(self._labels) + 1}"
        return label

    def _wall(self) -> float:
        return WALL_EPOCH + self.loop.time() * WALL_PER_VIRTUAL_S


def run_seed(
    seed: int,
    steps: int,
    *,
    echo: Callable[[str], None] | None = None,
    controller_type: ControllerType = Controller,
) -> SeedResult:
    return Simulation(seed, steps, echo=echo, controller_type=controller_type).run()
