"""The research lab's exports read back: CSV with the csv module, JSON with json, values equal."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any

from clinic.records import FALL_TEXT, NAME, PSEUDONYM, SCRIPT_NOTE, mrs_k, newcomer
from treadctl.clinic.exports import CSV_COLUMNS, person_document, write_csv
from treadctl.clinic.views import (
    AdverseEvent,
    Annotation,
    Deviation,
    Measure,
    ProgressionStep,
    SessionDose,
)


def read_csv(*, names: bool = False) -> list[dict[str, str]]:
    out = io.StringIO()
    write_csv(mrs_k(), out, names=names)
    reader = csv.DictReader(io.StringIO(out.getvalue()))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def optional(cell: str, kind: type[float | int | str]) -> float | int | str | None:
    return None if cell == "" else kind(cell)


def test_csv_one_row_a_session_values_round_trip() -> None:
    rows = read_csv()
    sessions = mrs_k().sessions
    assert [r["session_id"] for r in rows] == [s.id for s in sessions]
    for row, s in zip(rows, sessions, strict=True):
        assert row["person"] == PSEUDONYM
        assert row["person_name"] == ""
        assert int(row["prescription_id"]) == s.prescription_id
        assert row["device_id"] == s.device_id
        assert json.loads(row["parameters"]) == s.parameters
        assert datetime.fromisoformat(row["started_utc"]) == s.started
        assert s.ended is not None
        assert datetime.fromisoformat(row["ended_utc"]) == s.ended
        for key in ("planned_s", "duration_s", "backward_s", "distance_m", "speed_max_kmh"):
            assert float(row[key]) == getattr(s, key), key
        assert float(row["speed_backward_avg_kmh"]) == s.speed_backward_avg_kmh
        assert int(row["heart_rate_avg_bpm"]) == s.heart_rate_avg_bpm
        assert int(row["heart_rate_peak_bpm"]) == s.heart_rate_peak_bpm
        note = s.annotation or Annotation()
        assert optional(row["pain_before"], int) == note.pain_before
        assert optional(row["pain_after"], int) == note.pain_after
        assert optional(row["exertion_borg"], int) == note.exertion_borg
        assert optional(row["supervised_by"], str) == note.supervised_by
        assert row["notes"] == note.notes
    estop = rows[3]
    assert (estop["ended_how"], estop["end_cause"]) == ("estop", "button")
    assert (estop["estop_count"], estop["pause_count"]) == ("1", "0")
    assert estop["deviations"] == "estop@10:12 (button)"
    assert estop["notes"] == SCRIPT_NOTE
    assert (estop["adverse_event_count"], estop["adverse_events"]) == ("1", f"fall: {FALL_TEXT}")
    assert rows[1]["deviations"] == "pause@5:00 (operator)"
    assert rows[5]["pain_before"] == ""  # not annotated: empty cells


def test_csv_names_only_when_asked_for() -> None:
    assert {r["person_name"] for r in read_csv(names=True)} == {NAME}
    out = io.StringIO()
    write_csv(mrs_k(), out)
    assert NAME not in out.getvalue()


def test_csv_of_a_person_without_sessions_is_its_header() -> None:
    out = io.StringIO()
    write_csv(newcomer(), out)
    assert out.getvalue() == ",".join(CSV_COLUMNS) + "\n"


# --- JSON ---------------------------------------------------------------------------------------


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def session_from(doc: dict[str, Any]) -> SessionDose:
    """The inverse of the export, to show nothing was lost on the way."""
    note = doc["annotation"]
    annotation = None
    if note is not None:
        events = tuple(AdverseEvent(**e) for e in note.pop("adverse_events"))
        annotation = Annotation(**note, adverse_events=events)
    return SessionDose(
        **doc
        | {
            "started": when(doc["started"]),
            "ended": doc["ended"] and when(doc["ended"]),
            "deviations": tuple(Deviation(**d) for d in doc["deviations"]),
            "annotation": annotation,
        }
    )


def test_json_round_trips_the_whole_record() -> None:
    record = mrs_k()
    document = person_document(record)
    assert (document["format"], document["version"]) == ("treadctl-person", 1)
    assert json.loads(json.dumps(document)) == document
    back = json.loads(json.dumps(document))
    assert tuple(session_from(s) for s in back["sessions"]) == record.sessions
    measures = tuple(
        Measure(**m | {"measured_on": date.fromisoformat(m["measured_on"])})
        for m in back["measures"]
    )
    assert measures == record.measures
    steps = tuple(
        ProgressionStep(
            **s
            | {
                "week_start": date.fromisoformat(s["week_start"]),
                "created": when(s["created"]),
                "decided": s["decided"] and when(s["decided"]),
            }
        )
        for s in back["progression"]
    )
    assert steps == record.steps
    assert back["prescriptions"][0]["progression"]["parameter"] == "comfortable_backward_kmh"
    assert back["prescriptions"][0]["start_date"] == "2026-11-02"
    assert [w["short"] for w in back["adherence"]] == [False, True, False]
    assert back["devices"] == ["tm-1", "tm-2"]
    assert back["generated_utc"] == "2026-11-19T12:00:00Z"


def test_json_names_only_when_asked_for() -> None:
    hidden = person_document(mrs_k())
    assert hidden["person"]["id"] == PSEUDONYM
    assert hidden["person"]["name"] is None
    assert hidden["person"]["notes"] == ""
    assert NAME not in json.dumps(hidden)
    assert person_document(mrs_k(), names=True)["person"]["name"] == NAME


def test_json_of_a_person_with_nothing_yet() -> None:
    document = json.loads(json.dumps(person_document(newcomer())))
    assert document["sessions"] == document["measures"] == document["progression"] == []
    assert document["person"]["id"] == "p-0099"
