"""`treadctl run`: settings → store → driver → controller → MQTT + recorder, one TaskGroup, a
stopped belt at the end.

SIGTERM or SIGINT asks for a controlled stop of the belt (bounded in time, then an emergency
stop), publishes `offline` and returns 0. Any task failing ends the group; the controller's
`finally` stops the belt and the error propagates (exit 1, so systemd restarts the daemon, which
commands a stop at start-up and resumes nothing). SIGHUP reloads what can change without a
restart (reload_policy.py); a broken file keeps the old configuration.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from treadctl import __version__, logs
from treadctl.config import ConfigError, load_settings
from treadctl.config.models import Settings
from treadctl.control.controller import Controller
from treadctl.control.start_gate import start_rule
from treadctl.core.events import Fault, SessionFinished
from treadctl.core.program import Plan, Program
from treadctl.core.state import Event, Snapshot
from treadctl.daemon.reload_policy import limits_apply_now, plan_reload
from treadctl.daemon.shutdown import (
    SHUTDOWN_GRACE_S,
    SHUTDOWN_STOP_S,
    SHUTDOWN_TASKS_S,
    Shutdown,
    shutdown_stuck,
    stop_belt,
)
from treadctl.daemon.systemd import SystemdService
from treadctl.devices import device_profile, open_device, safety_rules
from treadctl.estop.inputs import EStopInput, make_input
from treadctl.mqtt.bridge import MqttBridge
from treadctl.mqtt.connection_loop import GOODBYE_S
from treadctl.mqtt.records import RESEND_S, RecordShipper
from treadctl.mqtt.topics import Topics
from treadctl.programs.library import ProgramLibrary
from treadctl.sdnotify import Notifier
from treadctl.sim.physics import BeltPhysics
from treadctl.store import SessionStore, database_path
from treadctl.store.delivery import Deliveries
from treadctl.store.recorder import SessionRecorder
from treadctl.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


def estop_inputs(settings: Settings, controller: Controller) -> list[EStopInput]:
    """The configured e-stop inputs, registered (not healthy yet) so that no start is accepted
    before each has been heard."""
    inputs: list[EStopInput] = []
    for config in settings.estop_inputs:
        item = make_input(
            config,
            lambda health, trip: controller.estop_input(health, trip=trip),
            confirm=controller.confirm_start,
        )
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
        record_resend_s: float = RESEND_S,
    ) -> None:
        self.settings = settings
        self.record_resend_s = record_resend_s
        self.config_path = config_path
        self.time_scale = time_scale
        self.sim_belt = sim_belt
        self.notifier = notifier or Notifier()
        self.systemd = SystemdService(self.notifier)
        self.library = ProgramLibrary(settings.programs.directory)
        self.stop = asyncio.Event()
        self.controller: Controller | None = None
        self.bridge: MqttBridge | None = None
        self.store: SessionStore | None = None
        self._stuck_timer: asyncio.TimerHandle | None = None
        self.recorder: SessionRecorder | None = None
        self.records: RecordShipper | None = None
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
                start_rule=start_rule(self.settings),
            )
            # Ended sessions go to the clinic service from the store, in worker threads.
            self.records = RecordShipper(
                Topics.from_settings(self.settings),
                Deliveries(store.path, self.settings.device.id),
                flushed=store.wait_flushed,
                resend_s=self.record_resend_s,
            )
            bridge = MqttBridge(
                self.settings,
                controller,
                programs=self.library.names(),
                model=driver.name,
                version=__version__,
                records=self.records,
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
                    workers = [tg.create_task(bridge.run(), name="treadctl.mqtt")]
                    if self.systemd.watchdog_s is not None:
                        tg.create_task(
                            self.systemd.watchdog(lambda: controller.last_tick_at),
                            name="treadctl.watchdog",
                        )
                    log.info("treadctl running", device=self.settings.device.id, driver=driver.name)
                    self.systemd.ready()
                    if on_ready is not None:
                        on_ready(controller, bridge)
                    await self.stop.wait()
                    log.info("shutting down: stopping the belt")
                    self.systemd.stopping()
                    await stop_belt(controller, SHUTDOWN_STOP_S)
                    # The belt is stopped. Whatever still has to close (MQTT, the database) gets
                    # a bounded time: a shutdown that hangs must not keep the unit "stopping".
                    self._stuck_timer = asyncio.get_running_loop().call_later(
                        SHUTDOWN_GRACE_S, shutdown_stuck
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

    def _programs(self) -> dict[str, Program]:
        return {name: entry.program for name, entry in self.library.entries.items()}

    def _on_controller(self, item: Snapshot | Event) -> None:
        # After the recorder's listener: the session's end is queued for the store already.
        if isinstance(item, SessionFinished) and self.records is not None:
            self.records.session_ended()
        if isinstance(item, Snapshot):
            self.systemd.status(item)
            if self._pending is not None and limits_apply_now(item.mode):
                self._apply_limits(self._pending)

    # --- storage: a failure is reported, never allowed near the belt ----------------------------

    def _storage_failed(self, message: str) -> None:
        log.error(
            "session storage failing; the belt and the safety rules are unaffected", error=message
        )
        session = (
            self.controller.session.id if self.controller and self.controller.session else None
        )
        self._publish(Fault(ts=time.time(), session_id=session, cause="storage", detail=message))

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

    # --- reload (SIGHUP) -------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the configuration file and the programs directory, and apply it as
        reload_policy.py says. A broken file changes nothing."""
        self.systemd.reloading()
        try:
            new = await asyncio.to_thread(load_settings, self.config_path)
            library = await asyncio.to_thread(ProgramLibrary, new.programs.directory)
        except ConfigError as exc:
            log.error("reload failed; keeping the running configuration", error=str(exc))  # noqa: TRY400 - the message says it all
            self._publish(Event("config_error", time.time(), None, {"detail": str(exc)}))
            self.systemd.reloaded()
            return False
        for error in library.errors:
            log.warning("program not loaded", error=error)
        plan = plan_reload(self.settings, new)
        for section in plan.needs_restart:
            log.warning("changes need a restart to take effect", section=section)
        self.library = library
        if self.controller is not None:
            self.controller.set_programs(self._programs())
        if self.bridge is not None:
            self.bridge.set_programs(library.names())
            self.bridge.set_telemetry_rate(plan.now.telemetry.rate_hz)
        if self.recorder is not None:
            self.recorder.set_rate(plan.now.telemetry.rate_hz)
        logs.set_level(plan.now.log_level)
        self.settings = plan.now
        if limits_apply_now(self.controller.mode if self.controller is not None else None):
            self._apply_limits(plan.when_idle)
        else:
            self._pending = plan.when_idle
            log.info("new limits and safety rules apply when the belt is idle")
        self.reloads += 1
        log.info("configuration reloaded", programs=len(library.entries))
        self.systemd.reloaded()
        return True

    def _apply_limits(self, settings: Settings) -> None:
        self._pending = None
        if self.controller is not None:
            self.controller.set_limits(device_profile(settings), safety_rules(settings))
            self.controller.set_start_rule(start_rule(settings))
            self.settings = settings


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
