"""The controller: one task owns the driver, commands arrive through one queue.

Each tick it reads the treadmill (which also feeds the treadmill's watchdog), lets the safety
supervisor judge the reading, advances the program runner, asks the supervisor what speed may
reach the belt, sends it, and tells its listeners (MQTT, storage) a snapshot and any events.
An emergency stop does not queue: `emergency_stop()` writes the stop to the wire at once.

Around it: control/inbox (the untrusted commands' queue), control/estop (the stop's wire side,
the e-stop inputs), control/link (lost and reopened), control/publication (the listeners),
control/start_gate (a start held until confirmed at the treadmill); pure
in core/: admission (refusals), session (a session's accounting), events, snapshot, modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Mapping
from typing import NoReturn

import structlog

from treadctl.control.alarm import Alarm
from treadctl.control.estop import EStopInputs, EStopWire
from treadctl.control.inbox import Inbox, settle
from treadctl.control.link import Link
from treadctl.control.publication import Listener, Publisher
from treadctl.control.start_gate import OFF, GatedSnapshot, StartCommand, StartGate, StartRule
from treadctl.core import commands as cmd
from treadctl.core import person, safety
from treadctl.core.admission import (
    heart_rate_refusal,
    manual_refusal,
    not_in_mode,
    person_set_refusal,
    program_refusal,
    start_refusal,
)
from treadctl.core.clock import Clock
from treadctl.core.commands import Command, Result
from treadctl.core.device import BeltDirection, DeviceStatus, WalkDirection
from treadctl.core.events import (
    CueGiven,
    EStopInputChanged,
    EStopLatched,
    Fault,
    PhaseStarted,
    ResetDone,
    SessionFinished,
    SessionStarted,
    Stopping,
)
from treadctl.core.modes import Trigger, latched_mode, transition
from treadctl.core.person import PersonLimits
from treadctl.core.program import Program
from treadctl.core.runner import (
    Cue,
    Finished,
    ProgramRunner,
    RunnerError,
    RunnerStatus,
    StepStarted,
)
from treadctl.core.safety import EStopCause, SafetyRules, SafetySupervisor, StopReason
from treadctl.core.session import Ending, TherapySession, new_session_id
from treadctl.core.snapshot import snapshot_of
from treadctl.core.state import Event, InputHealth, Mode, Snapshot
from treadctl.core.timeline import DeviceProfile, StepKind, build_timeline
from treadctl.drivers.base import Driver
from treadctl.drivers.errors import CodecError, DriverError, LinkLost, Rejected, TimedOut

log = structlog.get_logger(__name__)

ESTOP_DONE = Result.success("emergency stop: belt stopped; send reset when it is still")


class Controller:
    """The single owner of one treadmill. Run `run()` as a task; talk to it with `execute()`.

    Mode changes go through `_enter` (the pure table in core/modes); state that follows an
    await is written only if the transition still applies, or, for the wire bookkeeping, only
    if no e-stop landed meanwhile (`_halts` counts them). Every driver error raised in the
    loop ends in `_driver_failed`, the one place it becomes controller state.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        profile: DeviceProfile,
        rules: SafetyRules,
        programs: Mapping[str, Program],
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        tick_s: float = 0.1,
        time_scale: float = 1.0,
        reconnect_s: float = 2.0,
        start_rule: StartRule = OFF,
    ) -> None:
        if not 0 < tick_s <= driver.capabilities.max_poll_interval_s:
            # Each tick's read is what feeds the treadmill's watchdog (device.poll_interval_s).
            raise ValueError(
                f"tick {tick_s} s must be within (0, {driver.capabilities.max_poll_interval_s}] s "
                f"to keep the {driver.name} watchdog fed"
            )
        self.driver = driver
        self.profile = profile
        self._rules = self._fit_rules(rules)  # the device's; a person's session may tighten them
        self.supervisor = SafetySupervisor(self._rules)
        self.programs = programs
        self.clock = clock
        self.wall = wall
        self.tick_s = tick_s
        self.time_scale = time_scale
        self._mode = Mode.IDLE
        self.fault: str | None = None
        self.link = Link(driver, reconnect_s)
        self.status: DeviceStatus | None = None
        self.session: TherapySession | None = None
        self._publisher = Publisher()
        self._estop = EStopWire(driver)
        self._inputs = EStopInputs()
        self._inbox = Inbox()  # untrusted commands only (see submit())
        self._gate = StartGate(start_rule, clock)
        self._wake = asyncio.Event()
        self._alarm = Alarm(self._timed_out)  # phase boundaries, to ~0.1 ms
        self._rang = False  # a timer woke the task (else a command did)
        self._belt_started = False
        self._halts = 0  # e-stops so far: an await that saw this change must not write
        self._sent_speed: tuple[float, BeltDirection] | None = None
        self._sent_incline: float | None = None
        self._walk = WalkDirection.FORWARD
        self._last_status_at: float | None = None
        self._stop_reason = StopReason.COMMAND
        self._stop_detail = ""
        self.ready = asyncio.Event()  # set once the treadmill answered at start-up
        self.last_tick_at: float | None = None  # monotonic end of the last tick (liveness)

    def _fit_rules(self, rules: SafetyRules) -> SafetyRules:
        if rules.speed_min_kmh < self.driver.capabilities.speed_min_kmh:
            # The treadmill's slowest speed is a fact about it, whoever built the rules.
            return dataclasses.replace(rules, speed_min_kmh=self.driver.capabilities.speed_min_kmh)
        return rules

    def set_limits(self, profile: DeviceProfile, rules: SafetyRules) -> None:
        """New device limits and safety rules (a reload); the owner applies them when idle."""
        self.profile = profile
        self._rules = self._fit_rules(rules)
        if self.session is None:  # else when the session ends (its person's limits hold till then)
            self.supervisor.rules = self._rules

    def set_start_rule(self, rule: StartRule) -> None:
        """Supervised starts (a reload); a start held under the old rule is dropped."""
        if rule != self._gate.rule:
            self._gate.rule = rule
            self._drop_held("the start confirmation rule changed")

    def confirm_start(self, source: str) -> None:
        """The GO button of e-stop input `source` (from its reader's callback)."""
        if self._gate.confirm(source):
            self._wake.set()  # carried out by the task, as a new start

    def set_programs(self, programs: Mapping[str, Program]) -> None:
        """The programs a later `start` may name (a reload); a running program keeps its own."""
        self.programs = programs

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def link_ok(self) -> bool:
        return self.link.ok

    @property
    def last_snapshot(self) -> Snapshot | None:
        return self._publisher.last_snapshot

    def _enter(self, trigger: Trigger) -> bool:
        """Take the transition `trigger` if it applies in the current mode."""
        new = transition(self._mode, trigger)
        if new is None:
            return False
        self._mode = new
        return True

    # --- the outside -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._publisher.add(listener)

    def submit(self, command: Command) -> asyncio.Future[Result]:
        """Hand over a command; the future resolves when the controller has handled it.

        E-stops and safety inputs (heart rate, heartbeat, broker state) take effect before this
        returns and are never refused for lack of room; other commands queue, and a full queue
        answers `busy` (the caller passes that answer on)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        match command:
            case cmd.EmergencyStop(cause=cause, detail=detail):
                # Never queued: the stop is on the serial port before this call returns.
                task = self.emergency_stop_now(cause, detail)
                task.add_done_callback(lambda _: settle(future, ESTOP_DONE))
                return future
            case cmd.HeartRate(bpm=bpm):
                future.set_result(self.heart_rate(bpm))
                return future
            case cmd.Heartbeat():
                self.heartbeat()
                future.set_result(Result.success())
                return future
            case cmd.BrokerState(connected=connected):
                self.broker_state(connected)
                future.set_result(Result.success())
                return future
        self._inbox.put(command, future)
        self._wake.set()
        return future

    async def execute(self, command: Command) -> Result:
        return await self.submit(command)

    # --- safety inputs: applied at once, never queued --------------------------------------------

    def heart_rate(self, bpm: int) -> Result:
        if (refusal := heart_rate_refusal(bpm)) is not None:
            return Result.error(*refusal)
        self._apply(self.supervisor.heart_rate(bpm, self.clock()))
        return Result.success()

    def heartbeat(self) -> None:
        self.supervisor.heartbeat(self.clock())

    def broker_state(self, connected: bool) -> None:
        """Reported by the MQTT layer; the supervisor applies safety.broker_loss_s."""
        self.supervisor.broker(connected, self.clock())
        self._wake.set()

    # --- emergency stops -------------------------------------------------------------------------

    async def emergency_stop(
        self, cause: EStopCause = EStopCause.COMMAND, detail: str = "emergency stop command"
    ) -> None:
        """Latch and write the driver's fastest stop at once, then wait for the treadmill's
        confirmation (bounded by the driver's own timeouts)."""
        await asyncio.shield(self.emergency_stop_now(cause, detail))

    def emergency_stop_now(
        self, cause: EStopCause = EStopCause.COMMAND, detail: str = "emergency stop command"
    ) -> asyncio.Task[None]:
        """The fast path, for callbacks that cannot await: the stop bytes are handed to the
        serial port and the state is `estop` before this returns; the confirmation follows in
        a task."""
        self._halt_now(cause, detail)
        return self._estop.confirm()

    def estop_input(self, health: InputHealth, *, trip: bool) -> None:
        """A dedicated e-stop input changed (called from its reader's callback). On a trip the
        stop bytes are on the serial port before this returns; the bookkeeping follows."""
        if trip:
            self.emergency_stop_now(
                EStopCause.INPUT, f"e-stop input {health.name}: {health.detail}"
            )
        known = self._inputs.report(health)
        self.supervisor.input_health(health.name, None if health.healthy else health.detail)
        if known:
            self._emit(
                EStopInputChanged(ts=self.wall(), session_id=self._session_id(), health=health)
            )

    def _halt_now(self, cause: EStopCause, detail: str) -> None:
        """Write the stop, latch, and settle every consequence before returning: whatever was
        awaiting the driver meanwhile finds the mode changed and writes nothing."""
        self._estop.write()
        first = self.supervisor.latched is None
        self.supervisor.latch(cause, detail, self.clock())
        self._enter(Trigger.ESTOP)
        self._halts += 1
        self._belt_started = False
        self._sent_speed = None
        self._drop_held(f"emergency stop: {detail}")
        if not first:
            return
        log.warning("emergency stop", cause=str(cause), detail=detail)
        self._emit(
            EStopLatched(ts=self.wall(), session_id=self._session_id(), cause=cause, detail=detail)
        )
        fault = cause in (EStopCause.LINK_LOST, EStopCause.FAILURE)
        self._end_session("fault" if fault else "estop", str(cause), detail)
        self._snapshot(self.clock())  # the world sees `estop` now, not at the next tick

    # --- the task --------------------------------------------------------------------------------

    async def run(self) -> NoReturn:
        loop = asyncio.get_running_loop()
        try:
            await self._startup()
            deadline = loop.time()
            read = True
            while True:
                await self._inbox.drain(self._answer)
                await self._release_confirmed()
                await self._tick(read=read)
                if loop.time() >= deadline:  # a regular tick, not an early wake
                    deadline = max(deadline + self.tick_s, loop.time())
                self._wake.clear()
                read = True
                if self._inbox.empty():
                    read = await self._sleep(deadline, self._boundary_at(loop))
        except Exception as exc:
            log.exception("controller failed; stopping the belt")
            self._halt_now(EStopCause.FAILURE, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._alarm.close()
            await self._estop.on_exit(link_ok=self.link.ok)

    async def _sleep(self, deadline: float, boundary: float) -> bool:
        """Until the regular tick (`deadline`), a phase boundary or a command (loop times).
        False when woken only for a boundary: act on it at once, on the status read at most one
        tick ago (the regular tick, still due, reads again)."""
        wake_at = min(deadline, boundary)
        self._rang = False
        if boundary < deadline:
            self._alarm.set(boundary)  # on time to ~0.1 ms; the timer below is the backstop
        # A plain timer, not asyncio.timeout_at: that one ends every regular tick by cancelling
        # the task and raising, work the idle daemon paid 10 times a second.
        timer = asyncio.get_running_loop().call_at(wake_at, self._timed_out)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()
            self._alarm.cancel()
        return not self._rang or wake_at >= deadline

    def _timed_out(self) -> None:
        """The regular tick or a phase boundary is due (a timer, not a command, woke the task)."""
        self._rang = True
        self._wake.set()

    def _boundary_at(self, loop: asyncio.AbstractEventLoop) -> float:
        """Loop time of the running program's next phase boundary: a tick then puts the phase
        change on the wire on time rather than at the next regular poll."""
        runner = self.session.runner if self.session is not None else None
        at = runner.next_boundary_s() if runner is not None and self.mode is Mode.RUNNING else None
        if at is None:
            return float("inf")
        return loop.time() + max(0.0, at - self.clock())

    async def _startup(self) -> None:
        # Rule 1: the driver commanded a stop when it opened; say so again and never resume.
        self.supervisor.power_up(self.clock())
        rule = self._gate.rule
        log.info("supervised starts", required=rule.required, why=rule.why)
        try:
            await self.driver.stop()
        except DriverError as exc:
            log.warning("stop at start-up not acknowledged", error=str(exc))
            await self._driver_failed(exc)
        self.driver.release()
        self.ready.set()

    async def _driver_failed(self, exc: DriverError) -> Result:
        """The one boundary where a driver error becomes controller state, and the answer a
        command gets for it."""
        match exc:
            case LinkLost():
                await self._link_lost(exc)
                return Result.error("link_lost", str(exc))
            case Rejected(code="halted"):
                return Result.error(
                    "estop_latched", "emergency stop during the command: the belt stays stopped"
                )
            case Rejected():
                return Result.error("rejected", str(exc))
        log.info("treadmill did not answer as expected", error=str(exc))
        return Result.error("device_error", str(exc))

    # --- commands --------------------------------------------------------------------------------

    async def _answer(self, command: Command) -> Result:
        try:
            return await self._handle(command)
        except DriverError as exc:
            return await self._driver_failed(exc)

    async def _handle(self, command: Command) -> Result:  # noqa: PLR0911 - one case per command
        now = self.clock()
        match command:
            case cmd.Start():
                return await self._start_program(command, now)
            case cmd.ManualSet():
                return await self._manual(command, now)
            case cmd.Pause():
                return self._pause(now)
            case cmd.Resume():
                return self._resume(now)
            case cmd.Skip():
                return self._skip()
            case cmd.Stop():
                return self._stop()
            case cmd.Reset():
                return await self._reset()
            case cmd.EmergencyStop() | cmd.HeartRate() | cmd.Heartbeat() | cmd.BrokerState():
                return await self.submit(command)  # not queued by submit(); kept for completeness
        return Result.error("invalid_command", f"unknown command {command!r}")

    def _stop(self) -> Result:
        if self._drop_held("stop command"):
            return Result.success("the start waiting for confirmation is cancelled")
        if self._begin_stop(StopReason.COMMAND, "stop command"):
            return Result.success("stopping: the belt ramps down")
        return Result.success(f"nothing to stop ({self.mode})")

    def _pause(self, now: float) -> Result:
        session = self.session
        if self.mode is not Mode.RUNNING or session is None:
            return self._not_in_mode("pause")
        if session.runner is not None:
            # The program may end at this very instant: then its stop has begun instead.
            self._program_events(session.runner.pause())
        if not self._enter(Trigger.PAUSE):
            return self._not_in_mode("pause")
        session.pause(now)
        self._emit(Event("paused", self.wall(), session.id))
        return Result.success("paused: the belt slows to a stop")

    def _resume(self, now: float) -> Result:
        session = self.session
        if session is None or not self._enter(Trigger.RESUME):
            return self._not_in_mode("resume")
        session.resume(now)
        if session.runner is not None:
            self._program_events(session.runner.resume())
        self._emit(Event("resumed", self.wall(), session.id))
        return Result.success("resumed")

    def _skip(self) -> Result:
        session = self.session
        if self.mode is not Mode.RUNNING or session is None or session.runner is None:
            return self._not_in_mode("skip")
        try:
            events = session.runner.skip()
        except RunnerError as exc:
            return Result.error("not_allowed_in_mode", str(exc))
        self._program_events(events)
        self._emit(Event("skipped", self.wall(), session.id))
        if any(isinstance(event, Finished) for event in events):  # that was the last phase
            return Result.success("skipped the last phase: the program is over; stopping")
        return Result.success("skipped to the next phase")

    def _not_in_mode(self, what: str) -> Result:
        return Result.error(*not_in_mode(what, self.mode))

    def _refuse_start(self, now: float, limits: PersonLimits | None) -> Result | None:
        if self._gate.holding:
            return Result.error(
                "start_pending",
                "a start is waiting to be confirmed at the treadmill: send stop to cancel it",
            )
        hr_limit = limits is not None and limits.heart_rate_max_bpm is not None
        refusal = start_refusal(
            self.mode, self.fault, self.supervisor, now, heart_rate_limit=hr_limit
        )
        return None if refusal is None else Result.error(*refusal)

    async def _start_program(self, command: cmd.Start, now: float) -> Result:
        # What is wrong whatever the time (an unknown program, bad parameters) is said first.
        refusal = program_refusal(self.programs, command.program, self.profile, command.parameters)
        if refusal is not None:
            return Result.error(*refusal)
        program = self.programs[command.program]
        if command.limits is not None and (
            refusal := person.program_refusal(
                program, command.parameters, command.limits, self._rules
            )
        ):
            return Result.error(*refusal)
        if (refused := self._refuse_start(now, command.limits)) is not None:
            return refused
        timeline = build_timeline(program, self.profile, command.parameters)
        runner = ProgramRunner(timeline, self.clock, time_scale=self.time_scale)
        if (refused := await self._start_belt(command)) is not None:
            return refused
        session = self._begin_session(
            command,
            now,
            name=program.name,
            runner=runner,
            parameters=dict(timeline.parameters),
            planned_s=timeline.total_s,
        )
        self._program_events(runner.start())
        return Result.success(f"started {program.name} ({session.id})")

    async def _manual(self, command: cmd.ManualSet, now: float) -> Result:
        running = self.session if self.mode is Mode.RUNNING else None
        if running is not None and running.manual is None:
            running = None  # a program's session: the set is judged as a start, and refused
        refusal, limits = person_set_refusal(command, running, self._rules)
        if refusal is not None:
            return Result.error(*refusal)
        if (problem := manual_refusal(command, self._rules, self.profile)) is not None:
            return Result.error(*problem)
        if running is not None:
            running.manual = command
            running.limits = limits
            self.supervisor.rules = self._session_rules(limits)
            return Result.success("target changed")
        refused = self._refuse_start(now, limits)
        if refused is not None:
            return refused
        if (refused := await self._start_belt(command)) is not None:
            return refused
        session = self._begin_session(command, now)
        return Result.success(f"manual session {session.id}")

    # --- supervised starts (control/start_gate) ---------------------------------------------------

    def _hold(self, command: StartCommand) -> Result:
        """An accepted start waits for GO at the treadmill; the belt stays still meanwhile."""
        event, answer = self._gate.hold(command, self.wall())
        self._emit(event)
        self._snapshot(self.clock())
        return answer

    async def _release_confirmed(self) -> None:
        """Carry out a start GO confirmed, judged again as a new start (interlock, inputs…)."""
        if (taken := self._gate.take_confirmed(self.wall())) is None:
            return
        command, confirmed = taken
        self._emit(confirmed)
        try:
            result = await self._answer(command)
        finally:
            self._gate.released()
        if not result.ok:
            self._emit(self._gate.refused(confirmed, result, self.wall()))

    def _drop_held(self, why: str) -> bool:
        if (dropped := self._gate.cancel(self.wall(), why)) is None:
            return False
        self._emit(dropped)
        return True

    async def _start_belt(self, command: StartCommand) -> Result | None:
        """Start the belt at zero speed (watchdog armed) and enter `running`; else the answer:
        the start held for confirmation, or the refusal when an e-stop or a fault landed while
        the treadmill was answering."""
        if self._gate.needs_confirmation(command):
            return self._hold(command)
        await self.driver.start()
        if not self._enter(Trigger.STARTED):
            return Result.error(
                "estop_latched", f"the start was overtaken by an emergency stop ({self.mode})"
            )
        self._belt_started = True
        self._sent_speed = (0.0, self.supervisor.commanded.belt)
        return None

    async def _reset(self) -> Result:
        if self.mode not in (Mode.ESTOP, Mode.FAULT):
            return Result.success(f"nothing to reset ({self.mode})")
        if self.mode is Mode.FAULT and not self.link_ok:
            return Result.error("link_lost", f"the treadmill is not connected ({self.fault})")
        # Judge on the belt as it is now, not as the last tick saw it.
        halts = self._halts
        self._apply(await self._read(self.clock()))
        if self._halts != halts:
            return Result.error(
                "estop_latched", "an emergency stop arrived during the reset: send reset again"
            )
        now = self.clock()
        refusal = self.supervisor.reset_refusal(now)
        if refusal is not None:
            return Result.error(*refusal)
        if not self._enter(Trigger.RESET):  # a link lost during the read
            return Result.error("link_lost", f"the treadmill is not connected ({self.fault})")
        self.supervisor.reset(now)
        self.driver.release()
        self.fault = None
        self._emit(ResetDone(ts=self.wall(), interlock_s=self.supervisor.rules.estop_interlock_s))
        return Result.success(
            f"reset; starts allowed in {self.supervisor.rules.estop_interlock_s:g} s"
        )

    # --- the tick --------------------------------------------------------------------------------

    async def _tick(self, *, read: bool = True) -> None:
        now = self.clock()
        try:
            await self._tick_io(now, read=read)
        except DriverError as exc:
            await self._driver_failed(exc)
        if (expired := self._gate.expire(self.wall())) is not None:
            self._emit(expired)
        self._snapshot(now)
        self.last_tick_at = self.clock()

    async def _tick_io(self, now: float, *, read: bool) -> None:
        actions: list[safety.Action] = []
        if self.link_ok:
            if read:
                actions += await self._read(now)
        elif self.link.due(now):
            await self._reconnect(now)
        actions += self.supervisor.tick(now)
        held: list[Event] = []  # a phase's events, stamped now, told once its commands are out
        if (
            self.session is not None
            and self.session.runner is not None
            and self.mode is Mode.RUNNING
        ):
            setpoint, events = self.session.runner.poll()
            self.session.setpoint = setpoint
            self._program_events(events, held)
        self._apply(actions)
        try:
            if self.link_ok:
                await self._drive(now)
        finally:
            for event in held:
                self._emit(event)

    async def _read(self, now: float) -> list[safety.Action]:
        """A status read; a missed one (timeout, noise) is survivable and says nothing."""
        try:
            status = await self.driver.read_status()
        except (TimedOut, CodecError, Rejected) as exc:
            log.info("status read failed", error=str(exc))
            return []
        if self.session is not None and self._last_status_at is not None:
            self.session.travelled(status.speed_kmh, now - self._last_status_at)
        self._last_status_at = now
        self.status = status
        return self.supervisor.observe(status, now)

    async def _drive(self, now: float) -> None:
        want_kmh, want_belt, walk, incline = self._want()
        command, actions = self.supervisor.next_speed(want_kmh, want_belt, walk, now)
        self._apply(actions)
        if not self._belt_started or self._halted():
            return
        self._walk = walk
        wanted = (command.speed_kmh, command.belt)
        if wanted != self._sent_speed:
            halts = self._halts
            try:
                await self.driver.set_speed(command.speed_kmh, command.belt)
            except Rejected as exc:
                if exc.code != "halted":
                    self.emergency_stop_now(
                        EStopCause.FAILURE, f"treadmill refused a speed command: {exc}"
                    )
                return
            if self._halts != halts:  # an e-stop landed meanwhile: it cleared what was sent
                return
            self._sent_speed = wanted
        target_incline = self.supervisor.clamp_incline(incline, walk)
        if target_incline != self._sent_incline and not self._halted():
            try:
                self._sent_incline = await self.driver.set_incline(target_incline)
            except Rejected as exc:
                log.warning("incline refused", error=str(exc))
                self._sent_incline = target_incline
            except (TimedOut, CodecError) as exc:
                log.info("incline command not confirmed", error=str(exc))
        await self._finish_stop_if_still()

    def _halted(self) -> bool:
        return latched_mode(self.mode)

    def _want(self) -> tuple[float, BeltDirection, WalkDirection, float]:
        belt, walk = self.supervisor.commanded.belt, self._walk
        session = self.session
        if self.mode is Mode.RUNNING and session is not None:
            if session.manual is not None:
                m = session.manual
                return m.speed_kmh, self.profile.belt_for(m.walk), m.walk, m.incline_pct
            if session.setpoint is not None:
                sp = session.setpoint
                return sp.speed_kmh, sp.belt, sp.walk, sp.incline_pct
        incline = self._sent_incline or 0.0
        return 0.0, belt, walk, incline if self.mode is Mode.PAUSED else 0.0

    async def _finish_stop_if_still(self) -> None:
        if self.mode is not Mode.STOPPING:
            return
        if self.supervisor.commanded.speed_kmh == 0 and self.supervisor.belt_still():
            with contextlib.suppress(TimedOut, CodecError, Rejected):
                await self.driver.stop()
            if not self._enter(Trigger.STOPPED):  # an e-stop or fault ended it meanwhile
                return
            self._belt_started = False
            self._sent_speed = None
            reason = self._stop_reason
            if reason is StopReason.FINISHED:
                self._end_session("finished", None, self._stop_detail)
            else:
                cause = "command" if reason is StopReason.COMMAND else str(reason)
                self._end_session("stopped", cause, self._stop_detail)

    def _begin_stop(self, reason: StopReason, detail: str) -> bool:
        if not self._enter(Trigger.STOP):
            return False
        if self.session is not None and self.session.runner is not None:
            self._program_events(self.session.runner.abort())
        self._stop_reason, self._stop_detail = reason, detail
        self._emit(
            Stopping(ts=self.wall(), session_id=self._session_id(), reason=reason, detail=detail)
        )
        return True

    def _apply(self, actions: list[safety.Action]) -> None:
        for action in actions:
            match action:
                case safety.EStop(cause=cause, detail=detail):
                    self.emergency_stop_now(cause, detail)
                case safety.ControlledStop(reason=reason, detail=detail):
                    self._begin_stop(reason, detail)
                case safety.Notice(type=kind, detail=detail):
                    self._emit(Event(kind, self.wall(), self._session_id(), {"detail": detail}))

    def _program_events(
        self, events: list[StepStarted | Cue | Finished], held: list[Event] | None = None
    ) -> None:
        """Emits the runner's events; those of a phase into `held` instead when given (the
        listeners' work, e.g. the store's row, then waits until the phase's commands are on the
        wire)."""
        session = self.session
        if session is None:
            return
        tell = self._emit if held is None else held.append
        for event in events:
            match event:
                case StepStarted(index=index, step=step) if (
                    step.kind is StepKind.PHASE and step.phase
                ):
                    tell(PhaseStarted.of(self.wall(), session.id, index, step, step.phase.label))
                case Cue(text=text, step=step):
                    tell(CueGiven(ts=self.wall(), session_id=session.id, text=text, step=step.name))
                case Finished():
                    self._begin_stop(StopReason.FINISHED, "program finished")

    # --- faults ----------------------------------------------------------------------------------

    async def _link_lost(self, exc: DriverError) -> None:
        if not self.link.lost(self.clock()):
            return
        self.fault = str(exc)
        self._enter(Trigger.LINK_LOST)
        self._emit(
            Fault(ts=self.wall(), session_id=self._session_id(), cause="link_lost", detail=str(exc))
        )
        self._halt_now(EStopCause.LINK_LOST, str(exc))
        await self.link.let_go()

    async def _reconnect(self, now: float) -> None:
        if not await self.link.reopen(now):
            return
        self._last_status_at = None
        self._apply(await self._read(now))  # reset needs a fresh reading of the belt
        self._emit(
            Event(
                "link_restored",
                self.wall(),
                None,
                {"detail": "treadmill answering again; reset to use it"},
            )
        )

    # --- output ----------------------------------------------------------------------------------

    def _session_id(self) -> str | None:
        return self.session.id if self.session else None

    def _session_rules(self, limits: PersonLimits | None) -> SafetyRules:
        return self._rules if limits is None else person.session_rules(self._rules, limits)

    def _begin_session(
        self,
        command: cmd.Start | cmd.ManualSet,
        now: float,
        *,
        name: str = "manual",
        runner: ProgramRunner | None = None,
        parameters: dict[str, float] | None = None,
        planned_s: float | None = None,
    ) -> TherapySession:
        """A program's session (`runner`) or a manual one; its person's limits hold from its
        first set-point to its end."""
        session = TherapySession(
            new_session_id(self.wall()),
            name,
            now,
            runner=runner,
            manual=command if isinstance(command, cmd.ManualSet) else None,
            person=command.person,
            limits=command.limits,
        )
        self.session = session
        self.supervisor.rules = self._session_rules(session.limits)
        self.supervisor.session_start(now)
        self._emit(
            SessionStarted(
                ts=self.wall(),
                session_id=session.id,
                program=name,
                parameters=parameters,
                planned_s=planned_s,
                person=command.person,
            )
        )
        return session

    def _end_session(self, ended: Ending, cause: str | None, detail: str) -> None:
        """`cause` says why (None when finished)."""
        session = self.session
        if session is None:
            return
        now = self.clock()
        if session.runner is not None and session.runner.status is RunnerStatus.RUNNING:
            session.runner.abort()
        self.supervisor.session_end()
        self.supervisor.rules = self._rules  # the person's limits end with their session
        self._emit(
            SessionFinished(
                ts=self.wall(),
                session_id=session.id,
                program=session.program,
                person=session.person,
                ended=ended,
                cause=cause,
                detail=detail,
                summary=session.summary(now),
            )
        )
        self.session = None

    def _emit(self, item: Snapshot | Event) -> None:
        self._publisher.tell(item)

    def _snapshot(self, now: float) -> None:
        session, status = self.session, self.status
        bpm = self.supervisor.heart_rate_now(now)
        if session is not None:
            moving = status is not None and status.speed_kmh > 0
            session.account(
                now, backward_moving=moving and self._walk is WalkDirection.BACKWARD, bpm=bpm
            )
        snap = snapshot_of(
            ts=self.wall(),
            now=now,
            mode=self.mode,
            session=session,
            status=status,
            commanded=self.supervisor.commanded,
            walk=self._walk,
            incline_sent=self._sent_incline,
            fault=self.fault,
            heart_rate_bpm=bpm,
            estop_inputs=self._inputs.all(),
            make=functools.partial(GatedSnapshot, awaiting=self._gate.awaiting()),
        )
        self._publisher.snapshot(snap)
