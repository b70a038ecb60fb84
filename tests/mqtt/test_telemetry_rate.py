"""Telemetry at `telemetry.rate_hz` on a real broker, whether the rate is below the controller's
poll rate (samples ride its ticks: mqtt/outbox.py) or above it (a timer fills in)."""

from __future__ import annotations

import itertools
import statistics

from mqtt.brokers import Broker
from mqtt.harness import bridged

POLL_HZ = 10  # the harness's Woodway driver polls every 0.1 s


async def _stamps(broker: Broker, rate_hz: float, count: int) -> list[float]:
    """The `ts` of `count` telemetry messages in a row, as the user received them."""
    async with bridged(broker, telemetry={"rate_hz": rate_hz}) as b:
        first = len(b.user.on(b.topics.telemetry))
        await b.user.wait_for(
            b.topics.telemetry,
            lambda _: len(b.user.on(b.topics.telemetry)) >= first + count,
            timeout=count / rate_hz * 3 + 5,
        )
        return [float(t["ts"]) for t in b.user.on(b.topics.telemetry)[first:]]


async def test_below_the_poll_rate_telemetry_keeps_its_rate_without_bursts(broker: Broker) -> None:
    ts = await _stamps(broker, 5.0, 16)
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    assert 4.5 <= (len(ts) - 1) / (ts[-1] - ts[0]) <= 5.5, gaps
    assert 0.18 <= statistics.median(gaps) <= 0.22, gaps
    assert min(gaps) > 0.5 / POLL_HZ, gaps  # never two samples from one tick


async def test_above_the_poll_rate_a_timer_keeps_the_configured_rate(broker: Broker) -> None:
    ts = await _stamps(broker, 25.0, 60)
    rate = (len(ts) - 1) / (ts[-1] - ts[0])
    assert 20.0 <= rate <= 27.0, rate
