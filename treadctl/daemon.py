"""`treadctl run`: settings → store → driver → controller → MQTT + recorder, one TaskGroup, a
stopped belt at the end.

SIGTERM or SIGINT asks for a controlled stop of the belt (bounded in time, then an emergency
stop), publishes `offline` and returns 0. Any task failing ends the group; the controller's
`finally` stops the belt and the error propagates (exit 1, so systemd restarts the daemon, which
commands a stop at start-up and resumes nothing). SIGHUP reloads what can change without a
restart; a broken file keeps the old configuration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import structlog

from treadctl import __version__, logs
from treadctl.config import ConfigError, load_settings
from treadctl.config.models import Settings
from treadctl.control.controller import Controller
from treadctl.core import commands as cmd
from treadctl.core.program import Plan, Program
from treadctl.core.state import Event, Mode, Snapshot
from treadctl.devices import device_profile, open_device, safety_rules
from treadctl.estop.inputs import EStopInput, make_input
from treadctl.mqtt.bridge import MqttBridge
from treadctl.mqtt.connection_loop import GOODBYE_S
from treadctl.programs.library import ProgramLibrary
from treadctl.sdnotify import Notifier
from treadctl.sim.physics import BeltPhysics
from treadctl.store import SessionStore, database_path
from treadctl.store.recorder import SessionRecorder
from treadctl.tasks import cancel_and_wait, stacks

log = structlog.get_logger(__name__)

SHUTDOWN_STOP_S = 15.0  # a controlled stop from the 6.5 km/h backward ceiling takes ~12 s
TICK_STALE_S = 2.0  # the controller's poll loop counts as wedged after this long


# Once the belt is stopped: MQTT (`offline`, GOODBYE_S of it, then the disconnect) and the
# recorder get this long to end, cancelled again if they do not (a cancellation can be lost on
# Python 3.11, see treadctl/tasks.py); what still runs is logged and the shutdown goes on.
SHUTDOWN_TASKS_S = 5.0
# The last resort, which a correct shutdown never reaches: after the belt is stopped, the whole
# rest of the shutdown (the above, the controller, the database) gets this long, then the process
# logs where it hangs and exits with EXIT_SHUTDOWN_STUCK instead of leaving the unit "stopping".
SHUTDOWN_GRACE_S = 10.0
# Not 0: a shutdown that needed the last resort is a bug, and the exit status says so (systemd
# shows the unit failed; the tests, which expect 0 after SIGTERM, fail).
EXIT_SHUTDOWN_STUCK = 3


def _shutdown_stuck() -> None:
    """The belt is stopped but the shutdown did not finish: say where it hangs, then exit."""
    log.error(
        "shutdown did not finish; exiting (the belt is stopped)", tasks=stacks(asyncio.all_tasks())
    )
    logging.shutdown()
    os._exit(EXIT_SHUTDOWN_STUCK)


class Shutdown(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the TaskGroup to end it once the belt is stopped."""


def status_line(snap: Snapshot) -> str:
    """systemd's STATUS=: one line a person reads in `systemctl status`."""
    if snap.mode is Mode.IDLE:
        return "idle: belt stopped"
    if snap.mode in (Mode.ESTOP, Mode.FAULT):
        return f"{snap.mode}: {snap.fault or 'belt stopped'}; reset to continue"
    what = snap.program or "manual"
    phase = f", {snap.phase}" if snap.phase else ""
    return (
        f"{snap.mode}: {what}{phase}; walk {snap.target.walk}, belt {snap.actual.belt}, "
        f"{snap.actual.speed_kmh:.1f} km/h"
    )


def estop_inputs(settings: Settings, controller: Controller) -> list[EStopInput]:
    """The configured e-stop inputs, registered (not healthy yet) so that no start is accepted
    before each has been heard."""
    inputs: list[EStopInput] = []
    for config in settings.estop_inputs:
        item = make_input(config, lambda health, trip: controller.estop_input(health, trip=trip))
        controller.estop_input(item.health(), trip=False)
        inputs.append(item)
    return inputs


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        time_scale: float = 1.0,
        sim_belt: BeltPhysics | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.time_scale = time_scale
        self.sim_belt = sim_belt
        self.notifier = notifier or Notifier()
        self.library = ProgramLibrary(settings.programs.directory)
        self.stop = asyncio.Event()
        self.controller: Controller | None = None
        self.bridge: MqttBridge | None = None
        self.store: SessionStore | None = None
        self._stuck_timer: asyncio.TimerHandle | None = None
        self.recorder: SessionRecorder | None = None
        self.reloads = 0  # successful reloads (tests and status)
        self._pending: Settings | None = None  # reloaded limits waiting for an idle belt

    async def run(self, on_ready: Callable[[Controller, MqttBridge], None] | None = None) -> int:
        for error in self.library.errors:
            log.warning("program not loaded", error=error)
        self.store = SessionStore(
            database_path(self.settings),
            device_id=self.settings.device.id,
            on_error=self._storage_failed,
            on_recovered=self._storage_recovered,
        )
        await self.store.start()  # closes what a crash left open; I/O trouble is only reported
        for session_id in self.store.recovered_sessions:
            log.warning("session left open by a crash recorded as interrupted", session=session_id)
        try:
            return await self._run(self.store, on_ready)
        finally:
            await self.store.close()
            if self._stuck_timer is not None:
                self._stuck_timer.cancel()

    async def _run(
        self, store: SessionStore, on_ready: Callable[[Controller, MqttBridge], None] | None
    ) -> int:
        async with open_device(self.settings.device, sim_belt=self.sim_belt) as driver:
            controller = Controller(
                driver,
                profile=device_profile(self.settings),
                rules=safety_rules(self.settings),
                programs=self._programs(),
                # Each tick reads the treadmill: this is the poll that feeds its watchdog.
                tick_s=self.settings.device.poll_interval_s,
                time_scale=self.time_scale,
            )
            bridge = MqttBridge(
                self.settings,
                controller,
                programs=self.library.names(),
                model=driver.name,
                version=__version__,
            )
            recorder = SessionRecorder(
                store,
                device_id=self.settings.device.id,
                driver=driver.name,
                plan_of=self._plan_of,
                rate_hz=self.settings.telemetry.rate_hz,
            )
            inputs = estop_inputs(self.settings, controller)
            self.controller, self.bridge, self.recorder = controller, bridge, recorder
            controller.add_listener(recorder.on_controller)
            controller.add_listener(self._on_controller)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(controller.run(), name="treadctl.controller")
                    for item in inputs:  # heard before the first start can be asked for
                        tg.create_task(item.run(), name=f"treadctl.estop_input[{item.config.name}]")
                    await controller.ready.wait()
                    workers = [
                        tg.create_task(bridge.run(), name="treadctl.mqtt"),
                        tg.create_task(recorder.run(), name="treadctl.recorder"),
                    ]
                    if self.notifier.watchdog_s is not None:
                        tg.create_task(self._watchdog(), name="treadctl.watchdog")
                    log.info("treadctl running", device=self.settings.device.id, driver=driver.name)
                    self.notifier.ready("idle: belt stopped")
                    if on_ready is not None:
                        on_ready(controller, bridge)
                    await self.stop.wait()
                    log.info("shutting down: stopping the belt")
                    self.notifier.stopping("stopping the belt")
                    await self._stop_belt(controller, SHUTDOWN_STOP_S)
                    # The belt is stopped. Whatever still has to close (MQTT, the database) gets
                    # a bounded time: a shutdown that hangs must not keep the unit "stopping".
                    self._stuck_timer = asyncio.get_running_loop().call_later(
                        SHUTDOWN_GRACE_S, _shutdown_stuck
                    )
                    # MQTT first, bounded, while the controller still runs; the TaskGroup then
                    # ends the controller and the inputs.
                    await cancel_and_wait(
                        workers,
                        timeout_s=SHUTDOWN_TASKS_S,
                        patience_s=GOODBYE_S + 1.0,
                        what="shutdown",
                    )
                    raise Shutdown  # noqa: TRY301 - ends the TaskGroup, caught just below
            except* Shutdown:
                pass
        return 0

    def _plan_of(self, program: str) -> Plan | None:
        entry = self.library.entries.get(program)
        return entry.program.plan if entry is not None else None

    # --- storage: a failure is reported, never allowed near the belt ----------------------------

    def _storage_failed(self, message: str) -> None:
        log.error(
            "session storage failing; the belt and the safety rules are unaffected", error=message
        )
        session = (
            self.controller.session.id if self.controller and self.controller.session else None
        )
        self._publish(Event("fault", time.time(), session, {"cause": "storage", "detail": message}))

    def _storage_recovered(self) -> None:
        log.warning("session storage writing again")
        self._publish(
            Event(
                "storage_recovered", time.time(), None, {"detail": "session storage writing again"}
            )
        )

    def _publish(self, event: Event) -> None:
        if self.bridge is not None:
            self.bridge.publish_event(event)

    def _programs(self) -> dict[str, Program]:
        return {name: entry.program for name, entry in self.library.entries.items()}

    @staticmethod
    async def _stop_belt(controller: Controller, timeout_s: float) -> None:
        """A controlled stop; an emergency stop if it does not finish in time."""
        if controller.mode in (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING):
            try:
                async with asyncio.timeout(timeout_s):  # the Stop's own answer included
                    while controller.mode in (Mode.RUNNING, Mode.PAUSED):
                        result = await controller.execute(cmd.Stop())
                        if not result.ok:  # e.g. `busy` under a flood: never ignored
                            log.warning("shutdown stop refused; trying again", code=result.code)
                            await asyncio.sleep(0.05)
                    while controller.mode is Mode.STOPPING:  # noqa: ASYNC110 - no mode event
                        await asyncio.sleep(0.05)
            except TimeoutError:
                log.warning("controlled stop took too long; emergency stop")
                await controller.emergency_stop(detail="shutdown: controlled stop timed out")

    # --- systemd ---------------------------------------------------------------------------------

    async def _watchdog(self) -> NoReturn:
        """WATCHDOG=1 at half of WatchdogSec=, only while the event loop keeps time and the
        controller's serial poll loop is making progress; otherwise systemd restarts us."""
        assert self.notifier.watchdog_s is not None
        period = self.notifier.watchdog_s / 2
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            late = loop.time() - due
            if late > period / 2:
                log.warning("event loop was blocked; watchdog ping skipped", late_s=round(late, 3))
                continue
            if self._poll_healthy():
                self.notifier.watchdog()
            else:
                log.warning("controller poll loop stalled; watchdog ping skipped")

    def _poll_healthy(self) -> bool:
        controller = self.controller
        if controller is None or controller.last_tick_at is None:
            return False
        return time.monotonic() - controller.last_tick_at < TICK_STALE_S

    def _on_controller(self, item: Snapshot | Event) -> None:
        if isinstance(item, Snapshot):
            self.notifier.status(status_line(item))
            if self._pending is not None and item.mode is Mode.IDLE:
                self._apply_limits(self._pending)

    # --- reload (SIGHUP) -------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the configuration file and the programs directory. Programs, telemetry rate
        and log level apply at once; limits and safety rules once the belt is idle; `device` and
        `mqtt` need a restart. A broken file changes nothing."""
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = await asyncio.to_thread(load_settings, self.config_path)
            library = await asyncio.to_thread(ProgramLibrary, new.programs.directory)
        except ConfigError as exc:
            log.error("reload failed; keeping the running configuration", error=str(exc))  # noqa: TRY400 - the message says it all
            self._emit_reload_error(str(exc))
            self.notifier.send("READY=1")
            return False
        for error in library.errors:
            log.warning("program not loaded", error=error)
        for section in ("device", "mqtt", "storage", "estop_inputs"):
            if getattr(new, section) != getattr(self.settings, section):
                log.warning("changes need a restart to take effect", section=section)
        self.library = library
        if self.controller is not None:
            self.controller.set_programs(self._programs())
        if self.bridge is not None:
            self.bridge.set_programs(library.names())
            self.bridge.set_telemetry_rate(new.telemetry.rate_hz)
        if self.recorder is not None:
            self.recorder.set_rate(new.telemetry.rate_hz)
        logs.set_level(new.log_level)
        if self.controller is not None and self.controller.mode is not Mode.IDLE:
            self._pending = new
            log.info("new limits and safety rules apply when the belt is idle")
        else:
            self._apply_limits(new)
        self.settings = self.settings.model_copy(
            update={
                "telemetry": new.telemetry,
                "programs": new.programs,
                "log_level": new.log_level,
            }
        )
        self.reloads += 1
        log.info("configuration reloaded", programs=len(library.entries))
        self.notifier.send("READY=1")
        return True

    def _apply_limits(self, new: Settings) -> None:
        self._pending = None
        controller = self.controller
        if controller is None:
            return
        merged = self.settings.model_copy(update={"limits": new.limits, "safety": new.safety})
        controller.set_limits(device_profile(merged), safety_rules(merged))
        self.settings = merged

    def _emit_reload_error(self, message: str) -> None:
        self._publish(Event("config_error", time.time(), None, {"detail": message}))


async def run_daemon(
    settings: Settings,
    *,
    config_path: Path | None = None,
    stop: asyncio.Event | None = None,
    time_scale: float = 1.0,
    sim_belt: BeltPhysics | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[Controller, MqttBridge], None] | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT); the belt is stopped on every way out."""
    daemon = Daemon(settings, config_path=config_path, time_scale=time_scale, sim_belt=sim_belt)
    if stop is not None:
        daemon.stop = stop
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = loop.create_task(daemon.reload(), name="treadctl.reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, on_hup if sig is signal.SIGHUP else daemon.stop.set)
    try:
        return await daemon.run(on_ready)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        for task in reloads:
            task.cancel()
        daemon.notifier.close()
