"""Export one session as CSV (its samples) or JSON (everything), to a file or stdout."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from treadctl.store.model import SAMPLE_COLUMNS, Sample, SessionDetail

CSV_COLUMNS: tuple[str, ...] = ("time_utc", *SAMPLE_COLUMNS, "person")
JSON_FORMAT = "treadctl-session"
JSON_VERSION = 1


def iso_utc(ts: float) -> str:
    """`2026-11-24T10:15:00.123Z`: ISO-8601, UTC, in ms (the raw `ts` column keeps it all)."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def write_csv(samples: Sequence[Sample], out: TextIO, *, person: str | None = None) -> None:
    """One header row, then one row per sample; empty cells for missing values. The last
    column is the session's person (the same on every row), so exports can be put together.

    Floats are written with repr(), so reading them back with float() gives the same number.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for sample in samples:
        values = ("" if v is None else v for v in sample_values(sample))
        writer.writerow([iso_utc(sample.ts), *values, person or ""])


def sample_values(sample: Sample) -> tuple[Any, ...]:
    """A sample's fields in SAMPLE_COLUMNS order, as a row of the samples table has them (all
    plain values: no deep copy like dataclasses.astuple, which costs more than the rest)."""
    return tuple(getattr(sample, column) for column in SAMPLE_COLUMNS)


def sample_object(values: Sequence[Any]) -> dict[str, Any]:
    """One sample as the JSON document has it, from its values in SAMPLE_COLUMNS order."""
    return dict(zip(SAMPLE_COLUMNS, values, strict=True))


def session_document(detail: SessionDetail, samples: Sequence[Sample]) -> dict[str, Any]:
    session = detail.session.as_dict()
    session["started_utc"] = iso_utc(detail.session.started)
    session["ended_utc"] = None if detail.session.ended is None else iso_utc(detail.session.ended)
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "session": session,
        "phases": [p.as_dict() for p in detail.phases],
        "events": [e.as_dict() for e in detail.events],
        "samples": [sample_object(sample_values(s)) for s in samples],
    }


def write_json(detail: SessionDetail, samples: Sequence[Sample], out: TextIO) -> None:
    json.dump(session_document(detail, samples), out, indent=1)
    out.write("\n")
