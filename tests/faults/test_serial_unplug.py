"""The serial adapter unplugged mid-session, and plugged in again.

The daemon's reads fail at once: link lost, `fault` within a second, an e-stop it cannot write
(the port is gone). The treadmill's own watchdog, armed by the start (rule 8), stops the belt
half a second after the last byte. When the adapter comes back the daemon reopens the port (a
stop first), says `link_restored`, and a `reset` returns it to `idle`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from faults.rig import in_session
from mqtt.brokers import Broker

pytestmark = pytest.mark.broker_incidental  # left out of CI's embedded-broker pass


async def test_unplug_is_a_fault_within_a_second_the_watchdog_stops_the_belt_and_replug_resets(
    broker: Broker, tmp_path: Path
) -> None:
    async with in_session(tmp_path, broker) as f:
        await asyncio.sleep(1.0)

        unplugged_at, unplugged_wall = time.monotonic(), time.time()
        await f.inject("unplug")
        fault = await f.link_lost()
        assert fault["ts"] - unplugged_wall <= 1.0, fault
        await f.sim.until(
            lambda _s, _d, _v, line: "stopped by watchdog" in line, 3, "watchdog", unplugged_at
        )
        await f.still(unplugged_at)
        await f.finished_by_fault()
        state = await f.user.wait_for(f.topics.state, lambda s: s["mode"] == "fault")
        assert state["session_id"] is None
        refused = await f.user.request("reset")  # nothing to talk to yet
        assert not refused["ok"], refused
        assert (await f.user.request("heartbeat"))["ok"]  # still serving

        replugged_at = time.monotonic()
        await f.inject("replug")
        await f.restored_and_reset()
        await f.user.wait_for(f.topics.state, lambda s: s["mode"] == "idle")
        assert all(s == "stopped" for _, s, _, _ in f.sim.belt(replugged_at))
        await f.terminate()

    _, samples = f.ended("fault", "link_lost")
    before = [s for s in samples if s.ts <= unplugged_wall]
    assert before
    assert unplugged_wall - before[-1].ts < 0.5, "samples up to the unplug"
