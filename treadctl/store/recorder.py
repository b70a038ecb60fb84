"""From the controller to the store: session lifecycle as it happens, samples at the telemetry rate.

A listener on the controller (called in its tick, so it must be quick: the store only enqueues)
and one periodic task. Snapshots arrive at the controller's tick rate; the task records the
latest one per telemetry period, each snapshot at most once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NoReturn

import structlog

from treadctl.core.events import PhaseStarted, SessionFinished, SessionStarted
from treadctl.core.program import Plan
from treadctl.core.state import Event, Snapshot
from treadctl.store.model import sample_from_snapshot
from treadctl.store.writer import SessionStore

log = structlog.get_logger(__name__)


class SessionRecorder:
    def __init__(
        self,
        store: SessionStore,
        *,
        device_id: str,
        driver: str,
        plan_of: Callable[[str], Plan | None],
        rate_hz: float,
    ) -> None:
        self.store = store
        self.device_id = device_id
        self.driver = driver
        self.plan_of = plan_of
        self.period_s = 1.0 / rate_hz
        self._latest: Snapshot | None = None
        self._recorded_ts: float | None = None

    def on_controller(self, item: Snapshot | Event) -> None:
        match item:
            case Snapshot():
                self._latest = item
                return
            case SessionStarted():
                self.store.session_started(
                    item.session_id,
                    device_id=self.device_id,
                    driver=self.driver,
                    program=item.program,
                    parameters=item.parameters or {},
                    plan=self.plan_of(item.program),
                    planned_s=item.planned_s,
                    started=item.ts,
                    person=item.person,
                )
            case PhaseStarted():
                self.store.phase_started(
                    item.session_id,
                    index=item.index,
                    label=item.label,
                    walk=item.walk.value,
                    belt=item.belt.value,
                    speed_kmh=item.speed_kmh,
                    incline_pct=item.incline_pct,
                    planned_s=item.duration_s,
                    started=item.ts,
                )
        self.store.event(item.session_id, item.ts, item.type, item.details)
        if isinstance(item, SessionFinished):
            self._record(item.session_id)  # the last reading before the session closed
            self.store.session_ended(
                item.session_id,
                ended=item.ts,
                how=item.ended,
                cause=item.cause,
                detail=item.detail,
                summary=item.summary.as_dict(),
            )

    def _record(self, session_id: str | None = None) -> None:
        snap = self._latest
        if snap is None or snap.session_id is None or snap.ts == self._recorded_ts:
            return
        if session_id is not None and snap.session_id != session_id:
            return
        self._recorded_ts = snap.ts
        self.store.sample(snap.session_id, sample_from_snapshot(snap))

    def set_rate(self, rate_hz: float) -> None:
        self.period_s = 1.0 / rate_hz

    async def run(self) -> NoReturn:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            self._record()
            due = max(due + self.period_s, loop.time())
            await asyncio.sleep(due - loop.time())
