"""What the therapist adds to a session afterwards: pain before/after, exertion, who
supervised, notes, adverse events. Fields not given keep what was there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from treadctl.clinic import convert
from treadctl.clinic.errors import NotFoundError
from treadctl.clinic.forms import AnnotationForm
from treadctl.clinic.tables import AnnotationRow, SessionRow
from treadctl.clinic.views import Annotation


def session_row(db: Session, session_id: str) -> SessionRow:
    row = db.get(SessionRow, session_id)
    if row is None:
        raise NotFoundError(f"session {session_id!r}: the clinic has no such session")
    return row


def annotate(db: Session, session_id: str, form: AnnotationForm, *, now: datetime) -> Annotation:
    row = session_row(db, session_id)
    note = row.annotation
    if note is None:
        note = AnnotationRow(session_id=session_id, notes="", adverse_events=[], updated=now)
        row.annotation = note
    for name in ("pain_before", "pain_after", "exertion_borg", "supervised_by", "notes"):
        if name in form.model_fields_set:
            setattr(note, name, getattr(form, name) if name != "notes" else form.notes or "")
    if form.adverse_events is not None:
        note.adverse_events = [e.model_dump() for e in form.adverse_events]
    note.updated = now
    db.flush()
    result = convert.annotation(note)
    assert result is not None
    return result
