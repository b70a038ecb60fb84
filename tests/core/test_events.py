"""The typed events' wire payloads: the keys, order and values of docs/mqtt.md's events."""

from __future__ import annotations

import json

from treadctl.core import events as ev
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.safety import EStopCause, StopReason
from treadctl.core.session import SessionSummary, TherapySession
from treadctl.core.state import Event, InputHealth
from treadctl.core.timeline import Step, StepKind

TS = 1700000000.12345


def wire(event: Event) -> str:
    return json.dumps(event.as_dict())


def test_every_typed_event_is_an_event_with_the_payload_of_its_generic_form() -> None:
    summary = SessionSummary(61.23, 40.1, 30.0, 92, 101)
    health = InputHealth("box", "heartbeat", "silent", "no line for 0.5 s")
    cases: list[tuple[Event, str, dict[str, object]]] = [
        (ev.SessionStarted(ts=TS, session_id="s", program="manual"), "session_started",
         {"program": "manual", "person": None}),
        (ev.SessionStarted(ts=TS, session_id="s", program="manual", person="p-7"),
         "session_started", {"program": "manual", "person": "p-7"}),
        (ev.SessionStarted(ts=TS, session_id="s", program="p", parameters={"x": 1.0},
                           planned_s=9.5), "session_started",
         {"program": "p", "parameters": {"x": 1.0}, "planned_s": 9.5, "person": None}),
        (ev.CueGiven(ts=TS, session_id="s", text="turn", step="walk"), "cue",
         {"text": "turn", "step": "walk"}),
        (ev.SessionFinished(ts=TS, session_id="s", program="p", ended="estop", cause="command",
                         detail="d", summary=summary, person="p-7"), "session_finished",
         {"program": "p", "person": "p-7", "ended": "estop", "cause": "command", "detail": "d",
          "duration_s": 61.23, "distance_m": 40.1, "backward_s": 30.0,
          "heart_rate_avg_bpm": 92, "heart_rate_peak_bpm": 101}),
        (ev.EStopLatched(ts=TS, session_id=None, cause=EStopCause.INPUT, detail="d"), "estop",
         {"cause": "estop_input", "detail": "d"}),
        (ev.Fault(ts=TS, session_id="s", cause="link_lost", detail="gone"), "fault",
         {"cause": "link_lost", "detail": "gone"}),
        (ev.Stopping(ts=TS, session_id="s", reason=StopReason.COMMAND, detail="d"), "stopping",
         {"reason": "stopped", "detail": "d"}),
        (ev.ResetDone(ts=TS, interlock_s=3.0), "reset", {"interlock_s": 3.0}),
        (ev.EStopInputChanged(ts=TS, session_id=None, health=health), "estop_input",
         {"input": "box", "kind": "heartbeat", "healthy": False, "status": "silent",
          "detail": "no line for 0.5 s"}),
    ]  # fmt: skip
    for event, kind, details in cases:
        assert isinstance(event, Event)
        generic = Event(kind, TS, event.session_id, details)
        assert wire(event) == wire(generic), kind


def test_a_phase_started_event_reports_the_speed_to_three_decimals() -> None:
    step = Step(
        kind=StepKind.PHASE,
        start_us=0,
        duration_us=90_500_000,
        walk=WalkDirection.BACKWARD,
        belt=BeltDirection.FORWARD,
        from_kmh=0.0,
        speed_kmh=1.609344,
        slope_kmh_s=0.5,
        incline_pct=2.0,
        cue=None,
    )
    event = ev.PhaseStarted.of(TS, "s", 3, step, "retro walk")
    assert event.as_dict() == {
        "type": "phase_started",
        "ts": round(TS, 6),
        "session_id": "s",
        "index": 3,
        "phase": "retro walk",
        "walk": "backward",
        "belt": "forward",
        "speed_kmh": 1.609,
        "incline_pct": 2.0,
        "duration_s": 90.5,
    }


def test_a_session_summary_rounds_as_reported_and_weights_the_heart_rate_by_time() -> None:
    session = TherapySession("s", "manual", started=100.0)
    session.account(100.0, backward_moving=True, bpm=None)
    session.account(110.0, backward_moving=True, bpm=90)  # 10 s at 90
    session.account(140.0, backward_moving=False, bpm=120)  # 30 s at 120
    session.travelled(3.6, 12.345)
    session.pause(140.0)
    session.resume(150.0)
    assert session.summary(160.0) == SessionSummary(
        duration_s=50.0,
        distance_m=12.3,
        backward_s=10.0,
        heart_rate_avg_bpm=112,  # (10 × 90 + 30 × 120) / 40
        heart_rate_peak_bpm=120,
    )
