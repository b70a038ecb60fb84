"""SIGHUP with a broken configuration file mid-session (the compact variant of the reload part of
tests/mqtt/test_sdnotify.py, here with a belt running on the simulated treadmill).

The daemon keeps the configuration it runs with, says why in a `config_error` event, and goes on:
the session runs on untouched on the treadmill's side, telemetry keeps its 10 Hz, commands are
answered, and an e-stop still stops the belt.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from faults.rig import in_session
from mqtt.brokers import Broker

pytestmark = pytest.mark.broker_incidental  # left out of CI's embedded-broker pass


async def test_a_broken_file_on_reload_keeps_the_old_config_and_the_session(
    broker: Broker, tmp_path: Path
) -> None:
    async with in_session(tmp_path, broker) as f:
        good = f.config.read_text()
        assert "rate_hz = 10\n" in good
        f.config.write_text(good.replace("rate_hz = 10\n", "rate_hz = -3\n"))
        hup_at, hup_wall = time.monotonic(), time.time()
        f.daemon.send_signal(signal.SIGHUP)
        error = await f.event("config_error")
        assert "telemetry.rate_hz" in error["detail"], error

        seen = len(f.user.on(f.topics.telemetry))
        await asyncio.sleep(1.5)
        rate = (len(f.user.on(f.topics.telemetry)) - seen) / 1.5
        assert rate >= 7, f"telemetry at {rate:.1f}/s: the old 10 Hz is kept"
        f.assert_ran_on(hup_at)
        assert (await f.user.request("heartbeat"))["ok"]
        assert f.daemon.returncode is None

        estop_at = time.monotonic()
        assert (await f.user.request("estop"))["ok"]
        await f.still(estop_at, timeout=10)
        await f.terminate()

    session, samples = f.session(f.session_id)
    assert (session.ended_how, session.end_cause) == ("estop", "command")
    during = [s for s in samples if hup_wall <= s.ts <= hup_wall + 1.5]
    assert len(during) >= 10, "samples at 10 Hz through the failed reload"
    assert all(s.mode == "running" and s.belt == "reverse" for s in during)
