"""systemd's notify protocol against a real unix datagram socket set as NOTIFY_SOCKET.

The receiver is a thread that stamps each datagram as it arrives, so it keeps time while the
daemon's event loop is deliberately blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mqtt.brokers import Broker
from mqtt.harness import settings_for, user_client
from treadctl.config.models import Settings
from treadctl.daemon import Daemon
from treadctl.daemon.systemd import TICK_STALE_S
from treadctl.mqtt.topics import Topics
from treadctl.sdnotify import Notifier
from treadctl.sim.notify_socket import NotifySocket, notify_socket


def write_config(path: Path, broker: Broker, device: str, programs: Path, rate_hz: int) -> None:
    path.write_text(
        f'log_level = "WARNING"\n[device]\nid = "{device}"\ndriver = "sim"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprotocol = "{broker.protocol}"\n'
        f'[telemetry]\nrate_hz = {rate_hz}\n[programs]\ndirectory = "{programs}"\n'
    )


EXTRA_PROGRAM = """
name = "{name}"
title = "A short backward walk"
[[phases]]
name = "backward"
duration = "20s"
walk = "backward"
speed_kmh = 1.0
"""


async def test_notify_over_a_daemon_process_lifetime(broker: Broker, tmp_path: Path) -> None:
    """READY once the treadmill answers, STATUS follows the mode, WATCHDOG at half of
    WATCHDOG_USEC, RELOADING/READY around SIGHUP (a broken file keeps the old configuration
    and says why), STOPPING on SIGTERM, exit 0."""
    device = f"n{secrets.token_hex(3)}"
    programs = tmp_path / "programs"
    programs.mkdir()
    config = tmp_path / "treadctl.toml"
    write_config(config, broker, device, programs, rate_hz=5)
    topics = Topics.from_settings(Settings(device={"id": device}))
    with notify_socket(tmp_path) as ns:
        env = os.environ | {"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": "1000000"}
        env.pop("WATCHDOG_PID", None)
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "treadctl", "run", "--config", str(config), env=env
        )
        try:
            async with user_client(broker, topics) as user:
                ready_at = await ns.wait_for(lambda f: f == "READY=1", 15)
                assert "idle: belt stopped" in ns.statuses()
                await ns.wait_for(lambda f: f == "WATCHDOG=1", 3, since=ready_at)
                await asyncio.sleep(2.0)
                pings = ns.times("WATCHDOG=1", since=ready_at)
                gaps = [b - a for a, b in itertools.pairwise(pings)]
                assert len(pings) >= 4, pings  # every 0.5 s for WatchdogSec=1s
                assert max(gaps) < 0.75, gaps

                # SIGHUP: a new program in the programs directory becomes startable
                (programs / "short-back.toml").write_text(EXTRA_PROGRAM.format(name="short-back"))
                hup_at = time.monotonic()
                daemon.send_signal(signal.SIGHUP)
                await ns.wait_for(lambda f: f == "RELOADING=1", 5, since=hup_at)
                await ns.wait_for(lambda f: f == "READY=1", 5, since=hup_at)
                await asyncio.sleep(3.2 - (time.monotonic() - ready_at))  # power-up interlock
                answer = await user.request("start", {"program": "short-back"})
                assert answer["ok"], answer
                await ns.wait_for(lambda f: f.startswith("STATUS=running: short-back"), 5)

                # SIGHUP with a broken file: an error event, the running configuration stays
                config.write_text(config.read_text().replace("rate_hz = 5", "rate_hz = -3"))
                hup_at = time.monotonic()
                daemon.send_signal(signal.SIGHUP)
                error = await user.wait_for(topics.event, lambda e: e["type"] == "config_error")
                assert "telemetry.rate_hz" in error["detail"], error
                await ns.wait_for(lambda f: f == "READY=1", 5, since=hup_at)
                telemetry_before = len(user.on(topics.telemetry))
                await asyncio.sleep(1.0)
                rate = len(user.on(topics.telemetry)) - telemetry_before
                assert 3 <= rate <= 7, rate  # still 5 Hz
                assert (await user.request("heartbeat"))["ok"]  # serving as before

                term_at = time.monotonic()
                daemon.send_signal(signal.SIGTERM)
                await ns.wait_for(lambda f: f == "STOPPING=1", 5, since=term_at)
                assert await asyncio.wait_for(daemon.wait(), 25) == 0
                assert user.on(topics.availability)[-1] == "offline"
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()


# --- watchdog gating, in-process so the test can block the daemon's own loop -----------------

PERIOD_S = 0.1  # WATCHDOG_USEC = 200 ms: a ping every 100 ms while healthy


@contextlib.asynccontextmanager
async def daemon_in_process(broker: Broker, ns: NotifySocket) -> AsyncIterator[Daemon]:
    settings = settings_for(broker, device={"driver": "sim"})
    notifier = Notifier({"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": str(int(PERIOD_S * 2e6))})
    daemon = Daemon(settings, notifier=notifier)
    task = asyncio.create_task(daemon.run(), name="test.daemon")
    try:
        await ns.wait_for(lambda f: f == "READY=1", 10)
        yield daemon
    finally:
        daemon.stop.set()
        try:
            assert await asyncio.wait_for(task, 20) == 0
        finally:
            notifier.close()


@pytest.mark.blocks_loop("the daemon's loop is this test's loop: blocking it is the test")
async def test_no_watchdog_ping_while_the_event_loop_is_blocked(
    broker: Broker, tmp_path: Path
) -> None:
    with notify_socket(tmp_path) as ns:
        async with daemon_in_process(broker, ns):
            await asyncio.sleep(0.5)
            assert len(ns.times("WATCHDOG=1")) >= 3
            blocked_at = time.monotonic()
            time.sleep(6 * PERIOD_S)
            unblocked_at = time.monotonic()
            await asyncio.sleep(4 * PERIOD_S)
            # Nothing while blocked, and the late tick right after it is skipped too: a
            # loop that just hung does not vouch for itself.
            # (the receiving thread may stamp a ping sent just before the block a little late)
            assert ns.times("WATCHDOG=1", blocked_at + PERIOD_S, unblocked_at + PERIOD_S / 2) == []
            assert ns.times("WATCHDOG=1", unblocked_at), "pings resume once the loop runs"


async def test_no_watchdog_ping_while_the_serial_poll_is_stalled(
    broker: Broker, tmp_path: Path
) -> None:
    """The event loop runs, but the controller's poll cannot reach the driver (its lock held,
    as a wedged serial call would): after TICK_STALE_S the pings stop, and come back after."""
    with notify_socket(tmp_path) as ns:
        async with daemon_in_process(broker, ns) as daemon:
            assert daemon.controller is not None
            lock = daemon.controller.driver._session.lock  # type: ignore[attr-defined]
            async with lock:
                stalled_at = time.monotonic()
                await asyncio.sleep(TICK_STALE_S + 1.0)
                released_at = time.monotonic()
            silent_from = stalled_at + TICK_STALE_S + PERIOD_S
            assert ns.times("WATCHDOG=1", stalled_at, stalled_at + 1.0), "still fresh at first"
            assert ns.times("WATCHDOG=1", silent_from, released_at) == []
            await ns.wait_for(lambda f: f == "WATCHDOG=1", 2, since=released_at)
