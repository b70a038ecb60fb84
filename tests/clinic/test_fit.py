"""A session's FIT file, decoded back with fit-tool's own decoder: one record a second, speeds,
distance and heart rate as recorded, one lap and one session of treadmill walking."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fit_tool.data_message import DataMessage
from fit_tool.fit_file import FitFile
from fit_tool.profile.messages.activity_message import ActivityMessage
from fit_tool.profile.messages.lap_message import LapMessage
from fit_tool.profile.messages.record_message import RecordMessage
from fit_tool.profile.messages.session_message import SessionMessage
from fit_tool.profile.profile_type import Sport, SubSport

from treadctl.clinic.fit import FitDocumentError, fit_bytes
from treadctl.store.export import session_document
from treadctl.store.model import Sample, SessionDetail, SessionRecord

T0 = 1_794_300_000  # whole seconds: FIT stamps records to the second


def document(seconds: int = 120, rate_hz: int = 1) -> dict[str, Any]:
    """What the daemon sends for a session: a ramp to 2 km/h backward, heart rate from 10 s."""
    samples = []
    distance = 0.0
    for n in range(seconds * rate_hz):
        elapsed = n / rate_hz
        speed = min(2.0, 0.2 + elapsed * 0.05)
        distance += speed / 3.6 / rate_hz
        samples.append(
            Sample(
                ts=T0 + elapsed,
                elapsed_s=elapsed,
                speed_kmh=speed,
                belt="reverse",
                walk="backward",
                incline_pct=0.0,
                target_kmh=2.0,
                distance_m=round(distance, 2),
                heart_rate_bpm=None if elapsed < 10 else 90 + n % 7,
                phase_index=0,
                mode="running",
            )
        )
    session = SessionRecord(
        id="tm-1-20261124-101500",
        device_id="tm-1",
        driver="woodway",
        program="backward-30",
        parameters={},
        plan_sessions_per_week=None,
        plan_weeks=None,
        planned_s=float(seconds),
        started=T0,
        ended=T0 + seconds,
        ended_how="finished",
        person="p-0042",
    )
    return session_document(SessionDetail(session, [], []), samples)


def messages(data: bytes) -> list[DataMessage]:
    fit = FitFile.from_bytes(data)
    return [r.message for r in fit.records if isinstance(r.message, DataMessage)]


def test_records_speed_distance_and_heart_rate_decode_back() -> None:
    doc = document()
    samples = doc["samples"]
    decoded = messages(fit_bytes(doc))
    records = [m for m in decoded if isinstance(m, RecordMessage)]
    assert len(records) == len(samples) == 120
    assert records[0].timestamp == T0 * 1000
    assert records[-1].timestamp == (T0 + 119) * 1000
    assert records[0].speed == pytest.approx(samples[0]["speed_kmh"] / 3.6, abs=0.001)
    assert records[-1].speed == pytest.approx(samples[-1]["speed_kmh"] / 3.6, abs=0.001)
    assert records[-1].distance == pytest.approx(samples[-1]["distance_m"], abs=0.01)
    assert records[0].heart_rate is None
    assert records[15].heart_rate == samples[15]["heart_rate_bpm"]
    (lap,) = [m for m in decoded if isinstance(m, LapMessage)]
    (session,) = [m for m in decoded if isinstance(m, SessionMessage)]
    (activity,) = [m for m in decoded if isinstance(m, ActivityMessage)]
    for summary in (lap, session):
        assert summary.total_distance == pytest.approx(samples[-1]["distance_m"], abs=0.01)
        assert summary.total_elapsed_time == pytest.approx(119)
        assert summary.max_speed == pytest.approx(2.0 / 3.6, abs=0.001)
        assert summary.max_heart_rate == max(s["heart_rate_bpm"] or 0 for s in samples)
    assert session.sport == Sport.WALKING.value
    assert session.sub_sport == SubSport.TREADMILL.value
    assert session.num_laps == 1
    assert activity.num_sessions == 1


def test_faster_telemetry_becomes_one_record_a_second() -> None:
    doc = document(seconds=30, rate_hz=5)
    records = [m for m in messages(fit_bytes(doc)) if isinstance(m, RecordMessage)]
    assert len(records) == 30
    assert len({r.timestamp for r in records}) == 30
    last = doc["samples"][-1]
    assert records[-1].distance == pytest.approx(last["distance_m"], abs=0.01)
    assert records[-1].speed == pytest.approx(last["speed_kmh"] / 3.6, abs=0.001)


def broken(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(document(seconds=5))
    match change:
        case "format":
            doc["format"] = "treadctl-person"
        case "version":
            doc["version"] = 2
        case "no samples":
            doc["samples"] = []
        case "speed":
            del doc["samples"][2]["speed_kmh"]
        case "order":
            doc["samples"][3]["ts"] = T0 - 10
        case "session":
            del doc["session"]
    return doc


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("format", "format"),
        ("version", "version"),
        ("no samples", "samples: the session has no samples"),
        ("speed", r"samples\[2\]\.speed_kmh"),
        ("order", r"samples\[3\]\.ts"),
        ("session", "session"),
    ],
)
def test_a_bad_document_is_refused_naming_the_field(change: str, named: str) -> None:
    with pytest.raises(FitDocumentError, match=named) as caught:
        fit_bytes(broken(change))
    assert isinstance(caught.value, ValueError)
