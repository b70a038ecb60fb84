"""Session records through the real daemon: a SIGKILL loses at most the last second, and a
failing disk never reaches the belt.

The daemon and the simulated treadmill are separate processes; the database is a real SQLite
file read with the store's own queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mqtt.brokers import Broker
from mqtt.harness import User, user_client
from mqtt.processes import online, simulator, start_daemon, write_config
from treadctl.config.models import Settings
from treadctl.mqtt.topics import Topics
from treadctl.store.model import Sample
from treadctl.store.queries import get_session, load_samples
from treadctl.store.schema import open_readonly

pytestmark = pytest.mark.broker_incidental  # left out of CI's embedded-broker pass

PROGRAM = "alghadir2019-knee-oa"


def database(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """Read-only, as another process would read it (the store's own opening)."""
    return contextlib.closing(open_readonly(path))


def setup(tmp_path: Path, broker: Broker) -> tuple[Path, Path, Path, Topics]:
    link, config, db = tmp_path / "treadmill", tmp_path / "treadctl.toml", tmp_path / "s.db"
    device = f"r{secrets.token_hex(3)}"
    write_config(config, broker, link, device, f'[storage]\npath = "{db}"\n')
    topics = Topics.from_settings(Settings(device={"id": device}))
    return link, config, db, topics


async def start_program(user: User) -> str:
    """Start the program (retrying through the power-up interlock); the session id."""
    async with asyncio.timeout(10):
        while True:
            answer = await user.request("start", {"program": PROGRAM})
            if answer["ok"]:
                break
            assert answer["error"]["code"] == "interlock_active", answer
            await asyncio.sleep(0.5)
    started = await user.wait_for(user.topics.event, lambda e: e["type"] == "session_started")
    return str(started["session_id"])


async def committed(
    db: Path,
    session_id: str,
    enough: Callable[[list[Sample]], bool],
    what: str,
    *,
    at_most_1_s_old: bool = False,
    timeout: float = 15.0,
) -> list[Sample]:
    """The session's committed samples, read from the database (read-only, as another process
    would) until `enough(samples)`. With `at_most_1_s_old`, every look also checks the claim a
    crash is judged by: the newest committed sample is never more than a second old."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                looked_at = time.time()
                with database(db) as conn:
                    samples = load_samples(conn, session_id)
                if at_most_1_s_old and samples:
                    assert looked_at - samples[-1].ts <= 1.0, (looked_at, samples[-1])
                if enough(samples):
                    return samples
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def _reverse(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.belt == "reverse" and s.speed_kmh > 0]


def _any_reverse(samples: list[Sample]) -> bool:
    return bool(_reverse(samples))


async def test_a_killed_daemon_leaves_an_interrupted_session_complete_to_the_last_second(
    broker: Broker, tmp_path: Path
) -> None:
    link, config, db, topics = setup(tmp_path, broker)
    async with simulator(link) as sim, user_client(broker, topics) as user:
        daemon = await start_daemon(config)
        try:
            await online(user, topics, 0)
            session_id = await start_program(user)
            await sim.until(
                lambda s, d, v, _: s == "running" and d == "reverse" and v > 0.5, 15, ""
            )
            # samples reach the file while the belt runs, and keep reaching it: at every look
            # (each a moment a crash could come) the newest is at most a second old
            first = await committed(db, session_id, _any_reverse, "samples of the belt in reverse")
            await committed(
                db,
                session_id,
                lambda s: bool(_reverse(s)) and _reverse(s)[-1].ts >= _reverse(first)[0].ts + 1.5,
                "1.5 s of samples of the belt in reverse",
                at_most_1_s_old=True,
            )
            killed_at, killed_mono = time.time(), time.monotonic()
            daemon.kill()
            await daemon.wait()
            # the treadmill's side: its own watchdog stopped the belt, which ran down to zero
            await sim.until(
                lambda _s, _d, _v, line: "stopped by watchdog" in line, 3, "watchdog", killed_mono
            )
            await sim.until(lambda _s, _d, v, _l: v == 0, 15, "belt still", killed_mono)

            seen = len(user.on(topics.availability))
            daemon = await start_daemon(config)
            await online(user, topics, seen)  # recovery runs before the daemon goes online
            with database(db) as conn:
                session = get_session(conn, session_id).session
                samples = load_samples(conn, session_id)
            assert (session.ended_how, session.end_cause) == ("interrupted", "crash")
            assert samples, "samples were committed while the session ran"
            last = samples[-1].ts
            print(f"\nlast sample {killed_at - last:.2f} s before the SIGKILL", file=sys.stderr)
            assert killed_at - 1.0 <= last <= killed_at
            assert session.ended == last
            assert any(s.belt == "reverse" and s.speed_kmh > 0 for s in samples)
            state = await user.wait_for(topics.state, lambda s: s["mode"] == "idle")
            assert state["session_id"] is None  # nothing resumed
            assert all(s == "stopped" for _, s, _, _ in sim.belt(killed_mono)), sim.belt()
        finally:
            if daemon.returncode is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    assert await asyncio.wait_for(daemon.wait(), 25) == 0
                finally:
                    if daemon.returncode is None:  # hung on SIGTERM: fail, but leak nothing
                        daemon.kill()
                        await daemon.wait()


async def test_a_failing_disk_is_reported_and_never_reaches_the_belt(
    broker: Broker, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE = 0 on the running daemon: every write to a file fails (EFBIG), as on a
    full disk. The program goes on, a `fault` event says why, the e-stop still stops the belt,
    and once the disk is back the queued samples are written."""
    link, config, db, topics = setup(tmp_path, broker)
    async with simulator(link) as sim, user_client(broker, topics) as user:
        daemon = await start_daemon(config)
        unlimited = resource.RLIM_INFINITY
        try:
            await online(user, topics, 0)
            session_id = await start_program(user)
            await sim.until(
                lambda s, d, v, _: s == "running" and d == "reverse" and v > 0.5, 15, ""
            )
            await committed(db, session_id, _any_reverse, "samples of the belt in reverse")

            failed_at, failed_mono = time.time(), time.monotonic()
            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (0, unlimited))
            fault = await user.wait_for(
                topics.event, lambda e: e["type"] == "fault" and e["cause"] == "storage", 10
            )
            assert fault["session_id"] == session_id
            # the session carries on at speed, in reverse, while storage is down: the daemon's
            # telemetry for 2 s after the failure, and the treadmill's own reports
            await user.wait_for(topics.telemetry, lambda t: t["ts"] >= failed_at + 2.0, 10)
            told = [t for t in user.on(topics.telemetry) if t["ts"] >= failed_at]
            assert all(t["belt"] == "reverse" and t["speed_kmh"] > 0 for t in told), told
            now = sim.now()
            assert now is not None
            assert now[:2] == ("running", "reverse"), now
            belt = sim.belt(failed_mono)
            assert all(r[1:3] == ("running", "reverse") for r in belt), belt
            assert (await user.request("heartbeat"))["ok"]
            faults = [e for e in user.on(topics.event) if e["type"] == "fault"]
            assert len(faults) == 1, faults  # one report per failure, not one per sample

            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
            await user.wait_for(topics.event, lambda e: e["type"] == "storage_recovered", 15)
            assert (await user.request("estop"))["ok"]
            stopped_at = time.monotonic()
            await sim.until(lambda _s, _d, v, _l: v == 0, 10, "still", stopped_at - 0.2)
            await user.wait_for(
                topics.event, lambda e: e["type"] == "session_finished" and e["ended"] == "estop"
            )
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.wait(), 25) == 0

            with database(db) as conn:
                session = get_session(conn, session_id).session
                samples = load_samples(conn, session_id)
            assert (session.ended_how, session.end_cause) == ("estop", "command")
            during = [s for s in samples if failed_at + 0.5 < s.ts < failed_at + 2.0]
            assert len(during) >= 10, "samples taken while the disk failed were kept and written"
        finally:
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()
