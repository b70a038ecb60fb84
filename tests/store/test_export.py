"""CSV and JSON exports hold every sample, exactly."""

from __future__ import annotations

import csv
import io
import json
from contextlib import closing
from datetime import datetime
from pathlib import Path

from store.synth import Synth
from treadctl.store import Sample
from treadctl.store.export import CSV_COLUMNS, write_csv, write_json
from treadctl.store.model import SAMPLE_COLUMNS
from treadctl.store.queries import get_session, load_samples, open_readonly

INTS = {"heart_rate_bpm", "phase_index"}
STRINGS = {"belt", "walk", "mode"}


def from_cell(column: str, text: str) -> object:
    if text == "":
        return None
    if column in STRINGS:
        return text
    return int(text) if column in INTS else float(text)


def test_csv_round_trip(history: tuple[Path, dict[str, Synth]]) -> None:
    path, synths = history
    for synth in synths.values():
        with closing(open_readonly(path)) as db:
            samples = load_samples(db, synth.session_id)
        out = io.StringIO()
        person = "mrs-k" if synth is synths["uphill"] else None
        write_csv(samples, out, person=person)
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert tuple(rows[0]) == CSV_COLUMNS
        assert CSV_COLUMNS[-1] == "person"
        assert {row["person"] for row in rows} == {person or ""}
        back = [Sample(**{c: from_cell(c, row[c]) for c in SAMPLE_COLUMNS}) for row in rows]  # type: ignore[arg-type]
        assert back == synth.samples
        for row in rows:  # the readable column says the same instant as the raw one
            stamp = datetime.fromisoformat(row["time_utc"])  # Python 3.11 reads "Z"
            assert abs(stamp.timestamp() - float(row["ts"])) < 0.001
            assert row["time_utc"].endswith("Z")


def test_json_round_trip(history: tuple[Path, dict[str, Synth]]) -> None:
    path, synths = history
    synth = synths["uphill"]
    with closing(open_readonly(path)) as db:
        detail = get_session(db, synth.session_id)
        samples = load_samples(db, synth.session_id)
    out = io.StringIO()
    write_json(detail, samples, out)
    document = json.loads(out.getvalue())
    assert document["format"] == "treadctl-session"
    assert [Sample(**row) for row in document["samples"]] == synth.samples
    assert document["session"]["id"] == synth.session_id
    assert document["session"]["person"] == "mrs-k"
    assert document["session"]["started_utc"] == "2026-11-24T09:15:00.000Z"
    assert document["session"]["ended_how"] == "finished"
    assert [p["label"] for p in document["phases"]] == [spec.label for spec, _ in synth.phases]
    assert document["events"][0]["type"] == "session_started"
