"""The MQTT broker killed mid-session and started again.

Default policy (`safety.broker_loss_action = "stop"`): after `safety.broker_loss_s` without the
broker (1 s here) a controlled stop, a ramp rather than an e-stop. Once the broker is back the
daemon reconnects, re-publishes availability and state, renews its subscriptions, and commands
work again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from faults.rig import in_session
from mqtt.brokers import Broker
from mqtt.harness import user_client


async def test_broker_lost_mid_session_stops_the_belt_in_a_ramp_and_commands_work_when_it_returns(
    own_broker: Broker, tmp_path: Path
) -> None:
    async with in_session(tmp_path, own_broker) as f:
        await asyncio.sleep(1.0)
        speed = f.sim.now()
        assert speed is not None

        killed_at = time.monotonic()
        await own_broker.akill()
        await f.still(killed_at)
        ramp = f.sim.belt(killed_at)
        slowing = next(at for at, _, _, v in ramp if v < speed[2])
        # the grace time first (the belt untouched), then the stop
        assert 1.0 <= slowing - killed_at <= 3.0, (slowing - killed_at, ramp)
        speeds = [v for _, _, _, v in ramp]
        assert len(speeds) >= 4, ramp  # a ramp in steps, not a drop
        assert max(a - b for a, b in itertools.pairwise(speeds)) < 0.5, ramp
        # a controlled stop: the belt ran down to zero before the treadmill was told to stop
        # (an e-stop stops it at speed, with the treadmill's fast stop)
        first_stopped = next(r for r in ramp if r[1] == "stopped")
        assert first_stopped[3] == 0, ramp

        restarted_at = time.monotonic()
        await own_broker.astart()
        async with user_client(own_broker, f.topics) as user:
            assert await user.wait_for(f.topics.availability, timeout=10) == "online"
            state = await user.wait_for(f.topics.state, lambda s: s["mode"] == "idle", 10)
            assert state["session_id"] is None
            assert (await user.request("heartbeat"))["ok"]
            # the subscriptions were renewed: a program starts again, and stops on command
            assert (await user.request("start", {"program": "fault-walk"}))["ok"]
            await f.moving(restarted_at)
            stop_at = time.monotonic()
            assert (await user.request("stop"))["ok"]
            await f.still(stop_at)
            # (the events of the outage may arrive too: the daemon's outbox outlives a connection)
            finished = await user.wait_for(
                f.topics.event,
                lambda e: e["type"] == "session_finished" and e["session_id"] != f.session_id,
                15,
            )
            assert (finished["ended"], finished["cause"]) == ("stopped", "command")
        await f.terminate()

    session, samples = f.ended("stopped", "broker_lost")
    assert session.ended is not None
    # recorded through the outage and the ramp, to within a tick of the belt at rest
    assert samples[-1].mode == "stopping", samples[-1]
    assert samples[-1].speed_kmh < 0.5, samples[-1]
    assert samples[-1].ts >= session.ended - 0.5
