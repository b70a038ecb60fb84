"""From the controller to the store: session lifecycle as it happens, samples at the telemetry rate.

A listener on the controller (called in its tick, so it must be quick: the store only enqueues)
and one periodic task. Snapshots arrive at the controller's tick rate; the task records the
latest one per telemetry period, each snapshot at most once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NoReturn, get_args

import structlog

from treadctl.core.program import Plan
from treadctl.core.state import Event, Snapshot
from treadctl.store.model import EndedHow, sample_from_snapshot
from treadctl.store.writer import SessionStore

log = structlog.get_logger(__name__)

SUMMARY_KEYS = (
    "duration_s",
    "distance_m",
    "backward_s",
    "heart_rate_avg_bpm",
    "heart_rate_peak_bpm",
)
_ENDINGS: frozenset[str] = frozenset(get_args(EndedHow))


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
        if isinstance(item, Snapshot):
            self._latest = item
            return
        sid = item.session_id
        details = item.details
        match item.type:
            case "session_started" if sid is not None:
                program = str(details.get("program", "manual"))
                self.store.session_started(
                    sid,
                    device_id=self.device_id,
                    driver=self.driver,
                    program=program,
                    parameters=details.get("parameters") or {},
                    plan=self.plan_of(program),
                    planned_s=details.get("planned_s"),
                    started=item.ts,
                )
            case "phase_started" if sid is not None:
                self.store.phase_started(
                    sid,
                    index=int(details["index"]),
                    label=str(details["phase"]),
                    walk=str(details["walk"]),
                    belt=str(details["belt"]),
                    speed_kmh=float(details["speed_kmh"]),
                    incline_pct=float(details["incline_pct"]),
                    planned_s=details.get("duration_s"),
                    started=item.ts,
                )
        self.store.event(sid, item.ts, item.type, details)
        if item.type == "session_finished" and sid is not None:
            self._record(sid)  # the last reading before the session closed
            self.store.session_ended(
                sid,
                ended=item.ts,
                how=_ending(details.get("ended")),
                cause=details.get("cause"),
                detail=details.get("detail"),
                summary={k: details[k] for k in SUMMARY_KEYS if k in details},
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


def _ending(value: Any) -> EndedHow:
    text = str(value)
    if text in _ENDINGS:
        return text  # type: ignore[return-value]  # checked against the Literal's values
    log.warning("unknown session ending recorded as stopped", ended=text)
    return "stopped"
