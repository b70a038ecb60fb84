"""Noise and garbage on the serial line mid-session.

A burst of noise costs at most a poll or two: the driver drops what it cannot parse, retries,
and a good answer clears the count of misses (treadctl/drivers/session.py: `max_misses` bad
answers *in a row* mean the link is lost). So bursts a second apart leave the session running
at its speed. A treadmill that answers nothing but noise is as gone as an unplugged one: link
lost, `fault`, and the stop bytes still reach the treadmill (it reads them; only its answers
are garbled), so the belt stops.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from faults.rig import in_session
from mqtt.brokers import Broker

pytestmark = pytest.mark.broker_incidental  # left out of CI's embedded-broker pass


async def test_noise_bursts_are_survived_and_garbage_answers_stop_the_belt(
    broker: Broker, tmp_path: Path
) -> None:
    async with in_session(tmp_path, broker) as f:
        noisy_from = time.monotonic()
        for _ in range(4):
            sent = await f.inject("garbage 64")
            assert len(sent.removeprefix("sent ").split()) == 64, sent
            await asyncio.sleep(0.7)
        # the session carried on: never stopped on the treadmill's side, no fault, no e-stop
        f.assert_ran_on(noisy_from)
        assert f.events("fault") == []
        assert f.events("estop") == []
        assert (await f.user.request("heartbeat"))["ok"]

        # every answer garbage: link lost, fault, the belt stopped
        garbled_at = time.monotonic()
        await f.inject("garbage on")
        await f.link_lost()
        await f.still(garbled_at)
        await f.finished_by_fault()

        # the line clean again: the daemon reconnects, reset is accepted, it keeps serving
        await f.inject("garbage off")
        await f.restored_and_reset()
        assert (await f.user.request("heartbeat"))["ok"]
        reset_at = time.monotonic()
        await asyncio.sleep(0.5)
        assert all(s == "stopped" for _, s, _, _ in f.sim.belt(reset_at))
        await f.terminate()

    _, samples = f.ended("fault", "link_lost")
    noisy = [s for s in samples if s.mode == "running"]
    assert len(noisy) >= 30, "10 Hz samples kept through the noise"
