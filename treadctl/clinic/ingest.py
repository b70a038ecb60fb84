"""A session record from a daemon (`{base}/record`, docs/mqtt.md) into the clinic's database.

Idempotent by session id: a record sent twice (an ack lost, a daemon catching up) is stored
once; a later copy replaces the earlier one's figures and keeps the annotation. The dose is
worked out here, once, from the samples: prescribed against delivered (CERT/TIDieR).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from treadctl.clinic import audit
from treadctl.clinic.audit import NOT_LOGGED_IN
from treadctl.clinic.errors import FormError
from treadctl.clinic.forms import PersonId, explain, unstorable
from treadctl.clinic.tables import AnnotationRow, PrescriptionRow, SessionRow
from treadctl.store.export import JSON_FORMAT, JSON_VERSION
from treadctl.store.model import Sample
from treadctl.store.queries import summarise

Id = Annotated[str, Field(min_length=1, max_length=64)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]
# Unix seconds a datetime can hold (1970 to the end of 9999): beyond, a record is malformed.
Timestamp = Annotated[float, Field(allow_inf_nan=False, ge=0, le=253402300000)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SessionPart(_Doc):
    id: Id
    device_id: Id
    program: Id
    parameters: dict[str, Any] = Field(default_factory=dict)
    planned_s: Seconds | None = None
    started: Timestamp
    ended: Timestamp  # only ended sessions are sent
    ended_how: Literal["finished", "stopped", "estop", "fault", "interrupted"]
    end_cause: Annotated[str, Field(max_length=200)] | None = None
    end_detail: str | None = None
    person: PersonId | None = None


class EventPart(_Doc):
    ts: Seconds
    type: Annotated[str, Field(max_length=64)]
    details: dict[str, Any] = Field(default_factory=dict)


class SamplePart(_Doc):
    ts: Seconds
    elapsed_s: Seconds
    speed_kmh: Seconds
    belt: str
    walk: str
    incline_pct: Seconds
    target_kmh: Seconds
    distance_m: Seconds
    heart_rate_bpm: int | None
    phase_index: int | None
    mode: str


class SessionDocument(_Doc):
    format: Literal["treadctl-session"]
    version: Literal[1]
    session: SessionPart
    phases: list[dict[str, Any]] = Field(default_factory=list)
    events: list[EventPart] = Field(default_factory=list)
    samples: list[SamplePart] = Field(default_factory=list)


assert (JSON_FORMAT, JSON_VERSION) == ("treadctl-session", 1)


def parse_document(data: Any) -> SessionDocument:
    try:
        doc = SessionDocument.model_validate(data)
    except ValidationError as exc:
        raise FormError(f"session record: {explain(exc)}") from None
    # the record is kept whole (parameters, phases, events' details), so all of it is checked
    if not _plainly_storable(data) and (problem := unstorable(data)) is not None:
        raise FormError(f"session record: {problem}")
    return doc


def _plainly_storable(data: Any) -> bool:
    """True when `data` surely holds no NaN, infinity or NUL character, found at C speed: the
    encoder refuses those numbers (allow_nan=False) and writes a NUL as the escape \\u0000.
    unstorable() walks a record in Python, naming each value's place (a 30-minute record has
    some 100 000 values: three times as long); it is asked only when this is not sure."""
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return "\\u0000" not in text


def _backward_speed(samples: Sequence[Sample]) -> float | None:
    """Mean belt speed while walking backward with the belt moving, weighted by time."""
    seconds = metres = 0.0
    for before, after in pairwise(samples):
        if before.walk == "backward" and before.speed_kmh > 0:
            dt = max(0.0, after.elapsed_s - before.elapsed_s)
            seconds += dt
            metres += dt * before.speed_kmh
    return round(metres / seconds, 3) if seconds > 0 else None


_DEVIATIONS = {"paused": "pause", "stopping": "stop", "estop": "estop", "fault": "fault"}


def deviations(doc: SessionDocument) -> list[dict[str, Any]]:
    """Pauses, stops, e-stops and faults, with their causes, in time order."""
    out: list[dict[str, Any]] = []
    for event in sorted(doc.events, key=lambda e: e.ts):
        kind = _DEVIATIONS.get(event.type)
        if kind is None or event.details.get("reason") == "finished":
            continue  # the controller's own stop at the program's end is no deviation
        cause = event.details.get("cause") or event.details.get("reason") or "operator"
        out.append({"kind": kind, "at_s": round(event.ts - doc.session.started, 3), "cause": cause})
    if doc.session.ended_how == "interrupted":
        out.append(
            {
                "kind": "interrupted",
                "at_s": round(doc.session.ended - doc.session.started, 3),
                "cause": doc.session.end_cause or "daemon restarted",
            }
        )
    return out


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _prescription(db: Session, person: str, program: str, started: datetime) -> int | None:
    """The person's prescription of this program that was in force when the session began."""
    query = (
        select(PrescriptionRow.id)
        .where(
            PrescriptionRow.person_id == person,
            PrescriptionRow.program == program,
            PrescriptionRow.created <= started,
            or_(PrescriptionRow.ended.is_(None), PrescriptionRow.ended > started),
        )
        .order_by(PrescriptionRow.id.desc())
    )
    return db.scalars(query).first()


def store_record(db: Session, data: Any, *, now: datetime) -> tuple[str, bool]:
    """Store one record; returns (session id, whether it was new). FormError if malformed."""
    doc = parse_document(data)
    part = doc.session
    samples = [Sample(**vars(s)) for s in doc.samples]  # the fields, without model_dump's work
    summary = summarise(samples)
    started = _when(part.started)
    # looked up before the row is added: the query would flush the half-filled new row
    prescription_id = (
        None if part.person is None else _prescription(db, part.person, part.program, started)
    )
    row = db.get(SessionRow, part.id)
    new = row is None
    if row is None:
        row = SessionRow(id=part.id)
        db.add(row)
    row.device_id = part.device_id
    row.person_id = part.person
    row.prescription_id = prescription_id
    row.program = part.program
    row.parameters = dict(part.parameters)
    row.started = started
    row.ended = _when(part.ended)
    row.ended_how = part.ended_how
    row.end_cause = part.end_cause
    row.end_detail = part.end_detail
    row.planned_s = part.planned_s
    row.duration_s = summary.duration_s
    row.backward_s = summary.backward_s
    row.distance_m = summary.distance_m
    row.speed_backward_avg_kmh = _backward_speed(samples)
    row.speed_max_kmh = max((s.speed_kmh for s in samples), default=0.0)
    row.heart_rate_avg_bpm = summary.heart_rate_avg_bpm
    row.heart_rate_peak_bpm = summary.heart_rate_peak_bpm
    row.deviations = deviations(doc)
    row.document = data if isinstance(data, dict) else doc.model_dump()
    row.received = now
    if new and part.person is not None:
        _from_the_start(db, row, now=now)
    db.flush()
    return part.id, new


def _from_the_start(db: Session, row: SessionRow, *, now: datetime) -> None:
    """A session started from the dashboard: who started it is who supervised it, and the
    pre-session check's pain score is the pain before (both can be edited afterwards)."""
    start = audit.start_of(db, row.device_id, row.started)
    if start is None or start.body.get("person") != row.person_id:
        return
    check = start.body.get("check")
    pain = check.get("pain_before") if isinstance(check, dict) else None
    row.annotation = AnnotationRow(
        session_id=row.id,
        supervised_by=start.username if start.username != NOT_LOGGED_IN else None,
        pain_before=pain if isinstance(pain, int) else None,
        notes="",
        adverse_events=[],
        updated=now,
    )
