"""`treadctl demo`: the whole daemon on one machine with nothing set up.

A simulated reverse-capable treadmill on a pty, an embedded MQTT broker on a free loopback port
(or the configured broker when a configuration file is given), the real daemon, and a built-in
backward-walking program in accelerated time, started and watched over MQTT like any client
would. Only the program's clock is accelerated: the safety rules (ramps, standstill before a
reversal, countdowns) keep real time, so the belt visibly lags a fast-forwarded program.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiomqtt

from treadctl.cli_support import CommandError, ExitCode, UsageError
from treadctl.client.transport import decode
from treadctl.clinic import demo as clinic_demo
from treadctl.clinic.prescriptions import StartPlan
from treadctl.config.models import Settings, StorageConfig
from treadctl.core.durations import format_clock
from treadctl.core.timeline import build_timeline
from treadctl.daemon import Daemon
from treadctl.devices import device_profile
from treadctl.mqtt.connection import credentials, new_client, tls_context
from treadctl.mqtt.topics import Topics
from treadctl.programs.library import ProgramFileError, ProgramLibrary
from treadctl.sim.embedded_broker import EmbeddedBroker
from treadctl.sim.estop_box import SimulatedButtonBox
from treadctl.store import StoreError, database_path
from treadctl.store.queries import get_session, load_samples
from treadctl.store.schema import open_readonly

DEFAULT_PROGRAM = "alghadir2019-knee-oa"
TARGET_S = 60.0  # about a minute by default
CLINIC_WAIT_S = 15.0  # for the session's record to reach the clinic service
BAR = 24


class DemoError(CommandError):
    """The demo could not go on (the daemon stopped, the start was refused): exit 1."""


@dataclass
class Display:
    """The live line and the summary, from what arrives over MQTT."""

    out: TextIO
    speedup: float
    tty: bool
    planned_s: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    top_kmh: float = 0.0
    session_id: str | None = None
    _printed_at: float = 0.0

    def on_telemetry(self, data: dict[str, Any]) -> None:
        speed = float(data.get("speed_kmh") or 0.0)
        self.top_kmh = max(self.top_kmh, speed)
        self.telemetry = data
        self.render()

    def on_state(self, data: dict[str, Any]) -> None:
        self.state = data
        phase = data.get("phase")
        if phase and (not self.phases or self.phases[-1] != phase):
            self.phases.append(phase)
        self.render()

    def line(self) -> str:
        elapsed = float(self.telemetry.get("elapsed_s") or 0.0)
        done = min(1.0, elapsed * self.speedup / self.planned_s) if self.planned_s else 0.0
        left = max(0.0, self.planned_s / self.speedup - elapsed)
        filled = math.floor(done * BAR)
        target = self.state.get("target") or {}
        return (
            f"[{'#' * filled}{'.' * (BAR - filled)}] {done:4.0%}  "
            f"{self.state.get('phase') or self.state.get('mode', '')}: "
            f"walk {target.get('walk', '-')}, belt {self.telemetry.get('belt', '-')}, "
            f"{float(self.telemetry.get('speed_kmh') or 0):.1f} km/h, {format_clock(left)} left"
        )

    def render(self) -> None:
        if not self.planned_s:
            return
        if self.tty:
            self.out.write("\r\x1b[K" + self.line())
            self.out.flush()
            return
        now = time.monotonic()
        if now - self._printed_at >= 2.0:
            self._printed_at = now
            print(self.line(), file=self.out, flush=True)

    def message(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")
        print(text, file=self.out, flush=True)
        self.render()

    def summary(self, event: dict[str, Any]) -> None:
        self.session_id = event.get("session_id")
        if self.tty:
            self.out.write("\r\x1b[K" + self.line() + "\n")
        duration = float(event.get("duration_s") or 0.0)
        rows = [
            ("program", f"{event.get('program')} ({event.get('ended')})"),
            (
                "time",
                f"{format_clock(duration)} real for {format_clock(self.planned_s)} of program",
            ),
            ("distance", f"{float(event.get('distance_m') or 0):.0f} m (real belt distance)"),
            ("walked backward", format_clock(float(event.get("backward_s") or 0.0))),
            ("top speed", f"{self.top_kmh:.1f} km/h"),
            ("phases", ", ".join(dict.fromkeys(self.phases)) or "-"),
        ]
        print("\nSummary", file=self.out)
        for name, value in rows:
            print(f"  {name:<16}{value}", file=self.out)
        self.out.flush()


def demo_database(settings: Settings) -> Path:
    """Demo sessions go to their own database beside the default one, never into a clinic's."""
    default = database_path(settings.model_copy(update={"storage": StorageConfig()}))
    return default.parent / "demo" / default.name


def write_chart(database: Path, session_id: str, out: Path) -> None:
    from treadctl.store import plot  # noqa: PLC0415 - matplotlib is slow to import

    with contextlib.closing(open_readonly(database)) as conn:
        detail = get_session(conn, session_id)
        samples = load_samples(conn, session_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot.render(detail, samples, out)


def demo_settings(settings: Settings, broker: EmbeddedBroker | None) -> Settings:
    """The simulated treadmill always; the embedded broker unless a configured one is used."""
    device = settings.device.model_copy(update={"driver": "sim", "id": "demo"})
    storage = StorageConfig(path=demo_database(settings))
    # Nobody stands at a simulated box to press GO: supervised starts are off in the demo.
    safety = settings.safety.model_copy(update={"start_confirmation": "off"})
    update: dict[str, Any] = {"device": device, "storage": storage, "safety": safety}
    if broker is not None:
        update["mqtt"] = settings.mqtt.model_copy(
            update={
                "host": broker.host,
                "port": broker.port,
                "protocol": "3.1.1",
                "username": None,
                "password": None,
                "password_file": None,
                "tls": settings.mqtt.tls.model_copy(update={"enabled": False}),
            }
        )
    return settings.model_copy(update=update)


async def simulated_inputs(
    settings: Settings, stack: contextlib.AsyncExitStack, out: TextIO
) -> Settings:
    """Configured e-stop inputs, simulated: a button box on a pty for each heartbeat input,
    pyserial's loop:// (a closed loop) for each modem-lines input."""
    inputs = []
    for entry in settings.estop_inputs:
        if entry.kind == "heartbeat":
            box = await stack.enter_async_context(SimulatedButtonBox())
            port = box.path
        else:
            port = "loop://"
        print(f"e-stop input {entry.name}: simulated {entry.kind} on {port}", file=out)
        inputs.append(entry.model_copy(update={"port": port}))
    return settings.model_copy(update={"estop_inputs": tuple(inputs)})


async def run(
    settings: Settings,
    *,
    program: str = DEFAULT_PROGRAM,
    speedup: float | None = None,
    use_config_broker: bool = False,
    chart: Path | None = None,
    out: TextIO = sys.stdout,
) -> int:
    library = ProgramLibrary(settings.programs.directory)
    try:
        entry = library.get(program)
    except ProgramFileError as exc:
        raise UsageError(str(exc)) from exc
    async with contextlib.AsyncExitStack() as stack:
        broker = None if use_config_broker else await stack.enter_async_context(EmbeddedBroker())
        settings = demo_settings(settings, broker)
        settings = await simulated_inputs(settings, stack, out)
        timeline = build_timeline(entry.program, device_profile(settings), {})
        speedup = speedup or max(1.0, round(timeline.total_s / TARGET_S, 1))
        where = (
            f"embedded broker on {broker.host}:{broker.port}"
            if broker
            else (f"broker {settings.mqtt.host}:{settings.mqtt.port}")
        )
        print(
            f"treadctl demo: simulated Woodway treadmill (reverse belt), {where}\n"
            f"program {entry.program.name}: {entry.program.title}\n"
            f"{format_clock(timeline.total_s)} of program at {speedup:g}x: about "
            f"{format_clock(timeline.total_s / speedup)}. "
            "Safety rules keep real time. Ctrl-C stops.",
            file=out,
            flush=True,
        )
        clinic = await stack.enter_async_context(
            clinic_demo.running(settings, demo_database(settings).parent)
        )
        plan = await asyncio.to_thread(clinic.prepare, entry.program.name)
        login, password = await asyncio.to_thread(clinic.account)
        print(
            f"dashboard: {clinic.api}/ (log in as {login}, password {password})\n"
            f"clinic service: {clinic.api} (its database: {clinic.database.url.database})\n"
            f"walking: {plan.person} (a pseudonym), prescribed {plan.program} "
            f"{plan.plan.get('sessions_per_week', '?')}x a week, limit "
            f"{plan.limits.get('max_speed_backward_kmh', '-')} km/h backward",
            file=out,
            flush=True,
        )
        daemon = Daemon(settings, time_scale=speedup)
        daemon_task = asyncio.create_task(daemon.run(), name="treadctl.demo.daemon")
        loop = asyncio.get_running_loop()
        user = asyncio.current_task()
        assert user is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, user.cancel)
        display = Display(out, speedup, out.isatty())
        delivered = False
        try:
            ended = await _watch(settings, plan.payload(), display, daemon_task)
            if display.session_id is not None:
                delivered = await clinic.wait_for(display.session_id, CLINIC_WAIT_S)
        except asyncio.CancelledError:
            print("\ninterrupted: stopping the belt", file=out, flush=True)
            ended = "interrupted"
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            daemon.stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon_task
        print("demo finished: belt stopped", file=out, flush=True)
        if display.session_id is not None:
            await _clinic_report(clinic, plan, delivered=delivered, out=out)
    if display.session_id is not None:
        database = settings.storage.path
        assert database is not None
        chart = chart or database.parent / f"{display.session_id}.png"
        try:
            await asyncio.to_thread(write_chart, database, display.session_id, chart)
        except (StoreError, OSError) as exc:
            raise CommandError(f"the chart could not be written: {exc}") from exc
        print(
            f"chart of the session: {chart}\n"
            f"the session's record: treadctl sessions show {display.session_id} --db {database}",
            file=out,
            flush=True,
        )
    return ExitCode.OK if ended == "finished" else ExitCode.FAILURE


async def _clinic_report(
    clinic: clinic_demo.DemoClinic, plan: StartPlan, *, delivered: bool, out: TextIO
) -> None:
    if not delivered:
        print("the clinic service did not receive the session in time", file=out, flush=True)
        return
    directory = Path(str(clinic.database.url.database)).parent
    report = await asyncio.to_thread(clinic.write_report, directory / f"report-{plan.person}.html")
    print(
        f"the clinic has the session; {plan.person}'s report: {report}\n"
        f"  (`treadctl report {plan.person} --database {clinic.database.url}`)",
        file=out,
        flush=True,
    )


async def _watch(
    settings: Settings, body: dict[str, Any], display: Display, daemon_task: asyncio.Task[int]
) -> str:
    """Start the program over MQTT and follow it to its end; returns how it ended."""
    topics = Topics.from_settings(settings)
    creds = credentials(settings.mqtt)
    async with new_client(
        settings.mqtt,
        f"treadctl-demo-{secrets.token_hex(3)}",
        creds=creds,
        tls=tls_context(settings.mqtt),
    ) as client:
        await client.subscribe(f"{topics.base}/#", qos=1)
        follower = _Follower(client, topics, body, display)
        async with asyncio.timeout(15) as deadline:  # for the daemon to come online
            async for message in client.messages:
                if daemon_task.done():
                    raise DemoError("the daemon stopped")
                ended = await follower.on_message(message.topic.value, decode(message.payload))
                if follower.started:
                    deadline.reschedule(None)
                if ended is not None:
                    return ended
    raise DemoError("the broker connection ended")


@dataclass
class _Follower:
    client: aiomqtt.Client
    topics: Topics
    body: dict[str, Any]  # the start: program, parameters, person, limits
    display: Display
    started: bool = False

    async def on_message(self, topic: str, payload: Any) -> str | None:  # noqa: C901 - per topic
        topics, display = self.topics, self.display
        if topic == topics.availability and payload == "online" and not self.started:
            self.started = True
            display.message("daemon online; starting the program (3 s start interlock)")
            await _start(self.client, topics, self.body)
        elif not isinstance(payload, dict):
            return None
        elif topic == topics.telemetry:
            display.on_telemetry(payload)
        elif topic == topics.state:
            display.on_state(payload)
        elif topic == topics.response("start") and not payload.get("ok"):
            error = payload.get("error") or {}
            if error.get("code") not in ("interlock_active", "estop_input"):  # both pass
                raise DemoError(f"start refused: {error.get('message')}")
            await asyncio.sleep(0.5)
            await _start(self.client, topics, self.body)
        elif topic == topics.event:
            match payload.get("type"):
                case "session_started":
                    display.planned_s = float(payload.get("planned_s") or 0.0)
                case "cue":
                    display.message(f"  cue: {payload.get('text')}")
                case "session_finished":
                    display.summary(payload)
                    return str(payload.get("ended"))
        return None


async def _start(client: aiomqtt.Client, topics: Topics, body: dict[str, Any]) -> None:
    payload = json.dumps({"id": secrets.token_hex(4), **body})
    await client.publish(topics.cmd("start"), payload, qos=1)
