"""Session documents as a daemon sends them to the clinic (treadctl-session v1, the shape of
`treadctl.store.export.session_document`), built by hand: one sample a second at a steady
backward speed, and the events a stop, an e-stop or a fault leaves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from treadctl.clinic.database import open_database
from treadctl.clinic.ingest import store_record
from treadctl.store.export import JSON_FORMAT, JSON_VERSION, iso_utc

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)  # when the clinic got them; nothing reads it back
END_EVENTS = {"stopped": "stopping", "estop": "estop", "fault": "fault"}


def session_document(
    session_id: str,
    *,
    device: str = "tm-1",
    person: str | None = "mrs-k",
    program: str = "alghadir2019-knee-oa",
    started: datetime,
    duration_s: int = 120,
    speed_kmh: float = 1.2,
    ended_how: str = "finished",
    end_cause: str | None = None,
) -> dict[str, Any]:
    """A valid document of a session walked backward at `speed_kmh` for `duration_s`."""
    t0 = started.timestamp()
    samples = [
        {
            "ts": t0 + i,
            "elapsed_s": float(i),
            "speed_kmh": speed_kmh if i else 0.0,
            "belt": "reverse",
            "walk": "backward",
            "incline_pct": 0.0,
            "target_kmh": speed_kmh,
            "distance_m": round(speed_kmh / 3.6 * i, 3),
            "heart_rate_bpm": 95,
            "phase_index": 0,
            "mode": "running",
        }
        for i in range(duration_s + 1)
    ]
    ended = t0 + duration_s
    events: list[dict[str, Any]] = [{"ts": t0, "type": "session_started", "details": {}}]
    if ended_how in END_EVENTS:
        cause = end_cause or "operator"
        events.append({"ts": ended - 1, "type": END_EVENTS[ended_how], "details": {"cause": cause}})
    session = {
        "id": session_id,
        "device_id": device,
        "driver": "sim",
        "program": program,
        "parameters": {"comfortable_backward_kmh": speed_kmh},
        "plan_sessions_per_week": 3,
        "plan_weeks": 4,
        "planned_s": float(duration_s),
        "started": t0,
        "ended": ended,
        "ended_how": ended_how,
        "end_cause": end_cause,
        "end_detail": None,
        "summary": None,
        "person": person,
        "started_utc": iso_utc(t0),
        "ended_utc": iso_utc(ended),
    }
    phase = {
        "index": 0,
        "label": "retro walking",
        "walk": "backward",
        "belt": "reverse",
        "speed_kmh": speed_kmh,
        "incline_pct": 0.0,
        "planned_s": float(duration_s),
        "started": t0,
        "ended": ended,
    }
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "session": session,
        "phases": [phase],
        "events": events,
        "samples": samples,
    }


def store_sessions(url: str, *documents: dict[str, Any]) -> None:
    """Into the clinic's database, as the service stores what a daemon sends."""
    database = open_database(url)
    try:
        with database.session() as db:
            for document in documents:
                store_record(db, document, now=RECEIVED)
    finally:
        database.close()
