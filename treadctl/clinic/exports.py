"""A person's dose log for a research lab: CSV (one row a session) or JSON (the whole record).

Pseudonymous unless asked: the person is named by their pseudonymous id; their name and their
notes (free text about the person, which often names them) are written only with `names=True`.
Session notes and adverse-event texts are the dose log itself and are always written.
Floats are written with repr(), so reading them back with float() gives the same number.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from typing import Any, TextIO

from treadctl.clinic.views import Deviation, PersonRecord, SessionDose
from treadctl.core.durations import format_clock

JSON_FORMAT = "treadctl-person"
JSON_VERSION = 1
DEVIATION_KINDS = ("pause", "stop", "estop", "fault", "interrupted")
CSV_COLUMNS: tuple[str, ...] = (
    "session_id",
    "person",
    "person_name",  # empty unless names were asked for
    "prescription_id",
    "device_id",
    "program",
    "parameters",  # JSON object
    "started_utc",
    "ended_utc",
    "ended_how",
    "end_cause",
    "planned_s",
    "duration_s",
    "backward_s",
    "distance_m",
    "speed_backward_avg_kmh",
    "speed_max_kmh",
    "heart_rate_avg_bpm",
    "heart_rate_peak_bpm",
    *(f"{kind}_count" for kind in DEVIATION_KINDS),
    "deviations",  # "kind@m:ss (cause); …"
    "pain_before",
    "pain_after",
    "exertion_borg",
    "supervised_by",
    "notes",
    "adverse_event_count",
    "adverse_events",  # "category: text | …"
)


def iso(value: datetime | date | None) -> str | None:
    """ISO-8601: datetimes in UTC with a `Z`, dates as `YYYY-MM-DD`."""
    if value is None:
        return None
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat(timespec="seconds")
        return text.removesuffix("+00:00") + "Z"
    return value.isoformat()


def _plain(value: Any) -> Any:
    """JSON-ready: dates as ISO text, tuples as lists, dataclasses as objects."""
    if isinstance(value, datetime | date):
        return iso(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def deviation_text(deviations: Iterable[Deviation]) -> str:
    return "; ".join(f"{d.kind}@{format_clock(d.at_s)} ({d.cause})" for d in deviations)


def _cell(value: object) -> object:
    return "" if value is None else value


def session_row(
    session: SessionDose, record: PersonRecord, *, names: bool = False
) -> dict[str, object]:
    """One session as CSV_COLUMNS, None as an empty cell."""
    note = session.annotation
    counts = {kind: sum(d.kind == kind for d in session.deviations) for kind in DEVIATION_KINDS}
    events = note.adverse_events if note else ()
    row: dict[str, object] = {
        "session_id": session.id,
        "person": session.person_id or record.person.id,
        "person_name": (record.person.name or "") if names else "",
        "prescription_id": session.prescription_id,
        "device_id": session.device_id,
        "program": session.program,
        "parameters": json.dumps(session.parameters, sort_keys=True),
        "started_utc": iso(session.started),
        "ended_utc": iso(session.ended),
        "ended_how": session.ended_how,
        "end_cause": session.end_cause,
        "planned_s": session.planned_s,
        "duration_s": session.duration_s,
        "backward_s": session.backward_s,
        "distance_m": session.distance_m,
        "speed_backward_avg_kmh": session.speed_backward_avg_kmh,
        "speed_max_kmh": session.speed_max_kmh,
        "heart_rate_avg_bpm": session.heart_rate_avg_bpm,
        "heart_rate_peak_bpm": session.heart_rate_peak_bpm,
        **{f"{kind}_count": n for kind, n in counts.items()},
        "deviations": deviation_text(session.deviations),
        "pain_before": note and note.pain_before,
        "pain_after": note and note.pain_after,
        "exertion_borg": note and note.exertion_borg,
        "supervised_by": note and note.supervised_by,
        "notes": note.notes if note else "",
        "adverse_event_count": len(events),
        "adverse_events": " | ".join(f"{e.category}: {e.text}" for e in events),
    }
    return {k: _cell(v) for k, v in row.items()}


def write_csv(record: PersonRecord, out: TextIO, *, names: bool = False) -> None:
    """A header row, then one row a session, oldest first."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for session in record.sessions:
        writer.writerow(session_row(session, record, names=names))


def person_document(record: PersonRecord, *, names: bool = False) -> dict[str, Any]:
    """The whole record as JSON-ready values, under a format/version header."""
    person = _plain(record.person.as_dict())
    if not names:
        person["name"] = None
        person["notes"] = ""
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "generated_utc": iso(record.generated),
        "names": names,
        "person": person,
        "prescriptions": [_plain(p.as_dict()) for p in record.prescriptions],
        "sessions": [_plain(s) for s in record.sessions],
        "measures": [_plain(m) for m in record.measures],
        "progression": [_plain(s.as_dict()) for s in record.steps],
        "adherence": [_plain(w) | {"short": w.short} for w in record.adherence],
        "devices": list(record.devices),
    }
