"""The `session_finished` summary: how the session ended, time walking backward, heart rate."""

from __future__ import annotations

import asyncio

from control.rig import FAST, rig, with_rules
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.state import Event, Mode

BACK = WalkDirection.BACKWARD


def finished(events: list[Event]) -> dict[str, object]:
    return [e for e in events if e.type == "session_finished"][-1].details


async def test_a_stopped_backward_session_with_heart_rate() -> None:
    async with rig(with_rules(heart_rate_max_bpm=180)) as r:
        assert (await r.run(c.HeartRate(100))).ok
        assert (await r.run(c.ManualSet(1.5, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.0, 10, "reverse at speed")
        for bpm in (110, 120, 130, 120):
            assert (await r.run(c.HeartRate(bpm))).ok
            await asyncio.sleep(0.5)
        assert (await r.run(c.Stop())).ok
        await r.mode(Mode.IDLE, 15)
        summary = finished(r.events)
        assert (summary["ended"], summary["cause"]) == ("stopped", "command")
        duration = summary["duration_s"]
        backward = summary["backward_s"]
        assert isinstance(duration, float)
        assert isinstance(backward, float)
        assert 2.0 < backward <= duration  # the belt moved backward most of the session
        assert summary["heart_rate_peak_bpm"] == 130
        avg = summary["heart_rate_avg_bpm"]
        assert isinstance(avg, int)
        assert 100 <= avg <= 130
        distance = summary["distance_m"]
        assert isinstance(distance, float)
        assert distance > 0


async def test_an_emergency_stop_ends_as_estop_with_its_cause() -> None:
    async with rig(FAST) as r:
        assert (await r.run(c.ManualSet(1.0, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -0.5, 10, "moving")
        await r.controller.emergency_stop()
        summary = finished(r.events)
        assert (summary["ended"], summary["cause"]) == ("estop", "command")
        assert summary["heart_rate_avg_bpm"] is None  # no strap: no heart rate
        assert summary["heart_rate_peak_bpm"] is None
