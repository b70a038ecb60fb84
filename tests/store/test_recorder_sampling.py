"""The recorder samples on the controller's ticks, at the telemetry rate: no timer of its own.

Real SessionStore on a SQLite file; the snapshots are the controller's kind, fed at its 10 Hz
tick with jitter, on an injected clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import closing
from pathlib import Path

from mqtt.snapshots import running_snapshot
from treadctl.core.events import SessionFinished, SessionStarted
from treadctl.core.session import SessionSummary
from treadctl.core.state import Snapshot
from treadctl.store import SessionStore
from treadctl.store.queries import load_samples, open_readonly
from treadctl.store.recorder import SessionRecorder

T0 = 1_795_511_700.0
JITTER = (0.0, 0.004, -0.003, 0.012, -0.011, 0.002)  # s, off the 100 ms tick grid


def snapshot(ts: float, elapsed_s: float) -> Snapshot:
    return dataclasses.replace(
        running_snapshot(), ts=ts, session_id="s-1", elapsed_s=elapsed_s, distance_m=elapsed_s / 3.6
    )


async def samples_of(tmp_path: Path, rate_hz: float, ticks: list[float]) -> list[float]:
    """Feed one snapshot per tick time (s from the start), then end the session; the elapsed
    times recorded (the last reading is recorded as the session ends, if it was not yet)."""
    path = tmp_path / f"rate{rate_hz:g}.db"
    store = SessionStore(path)
    await store.start()
    now = [0.0]
    rec = SessionRecorder(
        store,
        device_id="treadmill",
        driver="sim",
        plan_of=lambda _: None,
        rate_hz=rate_hz,
        clock=lambda: now[0],
    )
    try:
        rec.on_controller(SessionStarted(ts=T0, session_id="s-1", program="manual"))
        for t in ticks:
            now[0] = t
            rec.on_controller(snapshot(T0 + t, t))
        end = ticks[-1] + 0.05
        summary = SessionSummary(end, 1.0, end, None, None)
        rec.on_controller(
            SessionFinished(
                ts=T0 + end,
                session_id="s-1",
                program="manual",
                ended="stopped",
                cause="command",
                detail="",
                summary=summary,
            )
        )
        await asyncio.wait_for(store.wait_flushed(), 5)
    finally:
        await store.close()
    with closing(open_readonly(path)) as db:
        recorded = [s.elapsed_s for s in load_samples(db, "s-1")]
    assert recorded[-1] == ticks[-1]
    return recorded


def tick_times(seconds: float) -> list[float]:
    n = round(seconds * 10)
    return [k / 10 + JITTER[k % len(JITTER)] for k in range(n)]


async def test_at_5_hz_every_other_tick_is_recorded_despite_the_jitter(tmp_path: Path) -> None:
    ticks = tick_times(4.0)
    recorded = await samples_of(tmp_path, 5.0, ticks)
    assert recorded == [*ticks[::2], ticks[-1]]


async def test_at_50_hz_every_tick_is_recorded_once(tmp_path: Path) -> None:
    ticks = tick_times(2.0)
    assert await samples_of(tmp_path, 50.0, ticks) == ticks


async def test_an_extra_tick_between_two_samples_adds_none(tmp_path: Path) -> None:
    ticks = sorted([*tick_times(2.0), 0.55, 1.27])  # a phase boundary's or a command's tick
    recorded = await samples_of(tmp_path, 5.0, ticks)
    assert 0.55 not in recorded
    assert 1.27 not in recorded
    assert len(recorded) == 11  # 10 on the 5 Hz grid, then the last reading


async def test_after_a_gap_the_samples_start_again_at_once(tmp_path: Path) -> None:
    ticks = [*tick_times(1.0), *(t + 5.0 for t in tick_times(1.0))]  # 4 s without a tick
    recorded = await samples_of(tmp_path, 5.0, ticks)
    assert recorded == [*ticks[:10:2], *ticks[10::2], ticks[-1]]
