"""The fault-injection rig: `treadctl run` and `treadctl sim` as separate processes, a real
broker and a real SQLite file.

The simulated treadmill takes its fault commands on stdin (treadctl/sim/console.py) and reports
what its belt does on stdout (`belt:` lines): every assertion about the belt is made there, on
the treadmill's side of the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqtt.brokers import Broker
from mqtt.harness import User, user_client
from mqtt.processes import Sim, online, simulator, start_daemon, write_config
from treadctl.config.models import Settings
from treadctl.mqtt.topics import Topics
from treadctl.store.model import Sample, SessionRecord
from treadctl.store.queries import get_session, load_samples
from treadctl.store.schema import open_readonly

PROGRAM = "fault-walk"
SPEED_KMH = 1.2
# The treadmill sets speed in 0.1 mph steps (1.2 km/h is 0.7 mph, 1.13 km/h) and its report
# rounds to 0.1 km/h: at speed means at least this.
AT_SPEED_KMH = 1.0
# One long backward phase: the session is still running whatever the fault test does to it.
PROGRAM_TOML = f"""
name = "{PROGRAM}"
title = "A long backward walk (fault-injection tests)"
[[phases]]
name = "backward"
duration = "10m"
walk = "backward"
speed_kmh = {SPEED_KMH}
"""
# Legitimate values that keep the tests short: no countdown before the belt runs backwards, the
# broker-loss grace time at 1 s, MQTT reconnects within a second of the broker coming back.
SAFETY = "[safety]\nreversal_countdown_s = 0\nbroker_loss_s = 1.0\n"
MQTT_RECONNECT = "reconnect_min_s = 0.2\nreconnect_max_s = 1.0\n"


@dataclass
class Faulty:
    """One daemon on one simulated treadmill, a user on the broker, the session database."""

    sim: Sim
    user: User
    topics: Topics
    config: Path
    db: Path
    daemon: asyncio.subprocess.Process
    session_id: str = ""  # the session start() began

    async def inject(self, command: str, timeout: float = 5.0) -> str:
        """Type a fault command into the simulator's console; its reply line."""
        stdin = self.sim.proc.stdin
        assert stdin is not None
        seen = len(self.sim.lines)
        stdin.write(command.encode() + b"\n")
        await stdin.drain()
        async with asyncio.timeout(timeout):
            while True:
                for _, line in self.sim.lines[seen:]:
                    if line.startswith(("ok: ", "sent ", "plugged in on ", "error: ")):
                        assert not line.startswith("error: "), line
                        return line
                await asyncio.sleep(0.02)

    async def moving(self, since: float = 0.0, timeout: float = 20.0) -> float:
        """Until the treadmill reports its belt running in reverse at the program's speed."""
        return await self.sim.until(
            lambda s, d, v, _: s == "running" and d == "reverse" and v >= AT_SPEED_KMH,
            timeout,
            "belt at speed in reverse",
            since,
        )

    async def still(self, since: float, timeout: float = 15.0) -> float:
        """Until the treadmill reports its belt stopped and at zero speed."""
        return await self.sim.until(
            lambda s, _d, v, _l: s == "stopped" and v == 0, timeout, "belt stopped", since
        )

    def assert_ran_on(self, since: float) -> None:
        """The treadmill says its belt has run in reverse all along since `since`, at speed now."""
        belt = self.sim.belt(since)
        assert all(s == "running" and d == "reverse" for _, s, d, _ in belt), belt
        now = self.sim.now()
        assert now is not None
        assert now[0] == "running", now
        assert now[2] >= AT_SPEED_KMH, now

    def session(self, session_id: str) -> tuple[SessionRecord, list[Sample]]:
        with contextlib.closing(open_readonly(self.db)) as conn:
            return get_session(conn, session_id).session, load_samples(conn, session_id)

    def ended(self, how: str, cause: str) -> tuple[SessionRecord, list[Sample]]:
        """The recorded session: ended `how` for `cause`, with samples of the belt in reverse at
        speed before that."""
        session, samples = self.session(self.session_id)
        assert (session.ended_how, session.end_cause) == (how, cause)
        assert session.ended is not None
        assert any(s.belt == "reverse" and s.speed_kmh >= AT_SPEED_KMH for s in samples)
        return session, samples

    async def event(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The first event of type `kind` whose fields match."""
        found: dict[str, Any] = await self.user.wait_for(
            self.topics.event,
            lambda e: e["type"] == kind and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )
        return found

    async def link_lost(self, timeout: float = 5.0) -> dict[str, Any]:
        """The daemon's `fault` event for a lost link, naming this session."""
        fault = await self.event("fault", cause="link_lost", timeout=timeout)
        assert fault["session_id"] == self.session_id
        return fault

    async def finished_by_fault(self) -> None:
        """The `session_finished` event of a session a lost link ended."""
        finished = await self.event("session_finished")
        assert (finished["ended"], finished["cause"]) == ("fault", "link_lost")

    async def restored_and_reset(self) -> None:
        """`link_restored`, then a `reset` accepted."""
        await self.event("link_restored", timeout=10)
        assert (await self.user.request("reset"))["ok"]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.user.on(self.topics.event) if e["type"] == kind]

    async def start(self) -> str:
        """Start the program (retrying through the power-up interlock); its session id."""
        async with asyncio.timeout(10):
            while True:
                answer = await self.user.request("start", {"program": PROGRAM})
                if answer["ok"]:
                    break
                assert answer["error"]["code"] == "interlock_active", answer
                await asyncio.sleep(0.25)
        started = await self.event("session_started")
        self.session_id = str(started["session_id"])
        return self.session_id

    async def terminate(self) -> None:
        """SIGTERM: the daemon stops the belt and exits 0 (its database closed)."""
        self.daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.daemon.wait(), 25) == 0


def configure(tmp_path: Path, broker: Broker, extra: str = "") -> tuple[Path, Path, Path, Topics]:
    """The daemon's TOML (tests/mqtt/processes.write_config plus storage, the program and the
    short safety times); the link, config and database paths and the device's topics."""
    link, config, db = tmp_path / "treadmill", tmp_path / "treadctl.toml", tmp_path / "s.db"
    programs = tmp_path / "programs"
    programs.mkdir()
    (programs / f"{PROGRAM}.toml").write_text(PROGRAM_TOML)
    device = f"f{secrets.token_hex(3)}"
    write_config(
        config,
        broker,
        link,
        device,
        f'[storage]\npath = "{db}"\n[programs]\ndirectory = "{programs}"\n{SAFETY}{extra}',
    )
    text = config.read_text()  # write_config wrote [mqtt]; a table cannot be opened twice
    config.write_text(text.replace("[telemetry]\n", MQTT_RECONNECT + "[telemetry]\n", 1))
    topics = Topics.from_settings(Settings(device={"id": device}))
    return link, config, db, topics


@contextlib.asynccontextmanager
async def faulty(tmp_path: Path, broker: Broker, extra: str = "") -> AsyncIterator[Faulty]:
    """Simulator, user and daemon, the daemon online; whatever is left running is ended."""
    link, config, db, topics = configure(tmp_path, broker, extra)
    async with simulator(link) as sim, user_client(broker, topics) as user:
        daemon = await start_daemon(config)
        rig = Faulty(sim, user, topics, config, db, daemon)
        try:
            await online(user, topics, 0)
            yield rig
        finally:
            if rig.daemon.returncode is None:
                rig.daemon.kill()
                await rig.daemon.wait()


@contextlib.asynccontextmanager
async def in_session(tmp_path: Path, broker: Broker) -> AsyncIterator[Faulty]:
    """`faulty()` with the program started (`session_id`) and the belt at speed in reverse."""
    async with faulty(tmp_path, broker) as rig:
        await rig.start()
        await rig.moving()
        yield rig
