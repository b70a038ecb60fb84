"""The treadmill answering late mid-session.

`device.response_timeout_s` is 0.25 s by default. Answers 0.1 s late are within it: the session
runs on at its speed. Answers 0.4 s late are past it on every request: `max_misses` requests in a
row without an answer in time are a lost link, `fault`, and the stop. The treadmill still reads
every byte (only its answers are late), so the stop reaches it and the belt stops.

The protocol has no request ids, so a late answer arrives during the next request and looks
like its answer; the session counts answers owed and does not let one of those reset the miss
count (treadctl/drivers/session.py), so the fault comes within the nominal bound below.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from faults.rig import faulty
from mqtt.brokers import Broker
from treadctl.config.models import DeviceConfig
from treadctl.drivers.session import MAX_MISSES

pytestmark = pytest.mark.broker_incidental  # left out of CI's embedded-broker pass

DEVICE = DeviceConfig(driver="woodway", port="unused")  # the rig's daemon runs the defaults
# Every request answered late is a miss, or at most once per miss an owed answer that does
# not reset the count: up to 2 × max_misses - 1 exchanges of at most one timeout each, each
# followed by at most one poll interval. The margin covers the simulator's console taking the
# `late` command and the daemon stamping the fault on a loaded machine.
LINK_LOST_WITHIN_S = (2 * MAX_MISSES - 1) * (
    DEVICE.response_timeout_s + DEVICE.poll_interval_s
) + 1.0  # 2.75 s at the defaults


async def test_late_within_the_timeout_runs_on_and_late_past_it_is_a_fault(
    broker: Broker, tmp_path: Path
) -> None:
    async with faulty(tmp_path, broker) as f:
        session_id = await f.start()
        await f.moving()

        slow_from, slow_wall = time.monotonic(), time.time()
        await f.inject("late 0.1")
        await asyncio.sleep(2.5)
        f.assert_ran_on(slow_from)
        assert f.events("fault") == []
        assert f.events("estop") == []
        assert (await f.user.request("heartbeat"))["ok"]

        late_at, late_wall = time.monotonic(), time.time()
        await f.inject("late 0.4")
        fault = await f.event("fault", cause="link_lost", timeout=15)
        assert fault["session_id"] == session_id
        # `max_misses` (3) missed answers in a row: see LINK_LOST_WITHIN_S.
        assert fault["ts"] - late_wall < LINK_LOST_WITHIN_S, "a few polls past the timeout"
        await f.still(late_at)
        finished = await f.event("session_finished")
        assert (finished["ended"], finished["cause"]) == ("fault", "link_lost")

        # answers on time again: reconnected, reset accepted, serving
        await f.inject("late 0")
        await f.event("link_restored", timeout=10)
        assert (await f.user.request("reset"))["ok"]
        assert (await f.user.request("heartbeat"))["ok"]
        await f.terminate()

    session, samples = f.session(session_id)
    assert (session.ended_how, session.end_cause) == ("fault", "link_lost")
    # Each status read is three exchanges, each 0.1 s late: the ticks (and the samples) slow
    # down to the pace of the answers, but none is lost and none is missing for long.
    slow = [s for s in samples if slow_wall + 0.3 <= s.ts <= late_wall]
    assert len(slow) >= 5, slow
    assert all(s.mode == "running" and s.belt == "reverse" for s in slow)
    gaps = [b.ts - a.ts for a, b in itertools.pairwise(slow)]
    assert max(gaps) < 0.6, gaps
