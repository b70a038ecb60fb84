"""From the controller to the store: session lifecycle as it happens, samples at the telemetry rate.

A listener on the controller (called in its tick, so it must be quick: the store only enqueues).
Snapshots arrive at the controller's tick rate (10 Hz); one is recorded per telemetry period,
each at most once. The controller's ticks carry the sampling: a timer of its own would wake the
daemon once more per sample, and on this machine each wake of an idle daemon costs ~0.1-0.2 ms
of CPU (docs/performance.md, "CPU").
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from treadctl.core.clock import Clock
from treadctl.core.events import PhaseStarted, SessionFinished, SessionStarted
from treadctl.core.program import Plan
from treadctl.core.sample_grid import SampleGrid
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
        clock: Clock = time.monotonic,
    ) -> None:
        self.store = store
        self.device_id = device_id
        self.driver = driver
        self.plan_of = plan_of
        self.grid = SampleGrid(rate_hz)
        self.clock = clock
        self._latest: Snapshot | None = None
        self._recorded_ts: float | None = None

    def on_controller(self, item: Snapshot | Event) -> None:
        match item:
            case Snapshot():
                self._latest = item
                self._sample()
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

    def _sample(self) -> None:
        """Record the latest snapshot if a sample is due (core/sample_grid.py)."""
        if self.grid.take(self.clock()):
            self._record()

    def set_rate(self, rate_hz: float) -> None:
        self.grid.set_rate(rate_hz)
