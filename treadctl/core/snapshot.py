"""The controller's state after a tick, as a Snapshot (docs/mqtt.md's `state` and `telemetry`)."""

from __future__ import annotations

from collections.abc import Callable

from treadctl.core.device import BeltDirection, DeviceStatus, WalkDirection
from treadctl.core.safety import SpeedCommand
from treadctl.core.session import TherapySession
from treadctl.core.state import InputHealth, Mode, Motion, Snapshot


def snapshot_of(
    *,
    ts: float,
    now: float,
    mode: Mode,
    session: TherapySession | None,
    status: DeviceStatus | None,
    commanded: SpeedCommand,
    walk: WalkDirection,
    incline_sent: float | None,
    fault: str | None,
    heart_rate_bpm: int | None,
    estop_inputs: tuple[InputHealth, ...],
    make: Callable[..., Snapshot] = Snapshot,
) -> Snapshot:
    """`ts` is the wall clock, `now` the monotonic time the session's figures are taken at;
    `make` builds it (a subclass with fields of its own, made in one go)."""
    sp = session.setpoint if session is not None else None
    phase = None
    if sp is not None and session is not None and session.runner is not None:
        phase = sp.step.phase.label if sp.step.phase else sp.step.name
    return make(
        ts=ts,
        mode=mode,
        program=session.program if session else None,
        phase=phase,
        phase_index=sp.index if sp is not None else None,
        phase_remaining_s=sp.step_remaining_s if sp is not None else None,
        session_id=session.id if session else None,
        target=Motion(commanded.speed_kmh, walk, commanded.belt, incline_sent or 0.0),
        actual=Motion(
            status.speed_kmh if status else 0.0,
            walk,
            status.belt if status else BeltDirection.FORWARD,
            status.incline_pct if status else 0.0,
        ),
        fault=fault,
        distance_m=session.distance_m if session else 0.0,
        elapsed_s=session.elapsed(now) if session else 0.0,
        heart_rate_bpm=heart_rate_bpm,
        estop_inputs=estop_inputs,
        person=session.person if session else None,
    )
