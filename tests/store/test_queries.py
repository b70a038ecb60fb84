"""Reading back: listing with filters, unique prefixes, and the summary of samples."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from store.synth import Synth
from treadctl.store import Sample
from treadctl.store.queries import (
    UnknownSessionError,
    list_sessions,
    open_readonly,
    resolve_id,
    summarise,
)


def s(elapsed: float, speed: float, walk: str = "backward", hr: int | None = None) -> Sample:
    belt = "reverse" if walk == "backward" else "forward"
    return Sample(1000 + elapsed, elapsed, speed, belt, walk, 0.0, speed, elapsed, hr, 0, "running")


def test_summarise() -> None:
    samples = [
        s(0, 0.0, hr=80),  # standing: not backward time
        s(1, 1.0, hr=90),
        s(2, 1.0),  # heart rate lost for a moment
        s(3, 1.0, "forward", hr=101),
        s(5, 0.0, "forward", hr=120),
    ]
    summary = summarise(samples)
    assert summary.backward_s == 2.0  # the two intervals that start walking backward, moving
    assert summary.duration_s == 5.0
    assert summary.distance_m == 5.0
    assert summary.heart_rate_avg_bpm == 93  # (80·1 + 90·1 + 101·2) / 4 s, time-weighted
    assert summary.heart_rate_peak_bpm == 120
    assert summary.samples == 5


def test_summarise_nothing() -> None:
    assert summarise([]).as_dict() == {
        "duration_s": 0.0,
        "distance_m": 0.0,
        "backward_s": 0.0,
        "heart_rate_avg_bpm": None,
        "heart_rate_peak_bpm": None,
        "samples": 0,
    }


def test_list_filters(history: tuple[Path, dict[str, Synth]]) -> None:
    path, _ = history
    with closing(open_readonly(path)) as db:
        assert [x.program for x in list_sessions(db)] == ["backward-uphill", "manual"]
        assert [x.program for x in list_sessions(db, program="manual")] == ["manual"]
        since = datetime(2026, 11, 25, tzinfo=UTC)
        assert [x.id for x in list_sessions(db, since=since)] == ["20261126T170000-cd34"]
        assert list_sessions(db, program="nope") == []
        assert [x.id for x in list_sessions(db, person="mrs-k")] == ["20261124T091500-ab12"]
        assert [x.person for x in list_sessions(db)] == ["mrs-k", None]
        assert list_sessions(db, person="nobody") == []


def test_unique_prefixes(history: tuple[Path, dict[str, Synth]]) -> None:
    path, _ = history
    with closing(open_readonly(path)) as db:
        assert resolve_id(db, "20261126") == "20261126T170000-cd34"
        assert resolve_id(db, "20261124T091500-ab12") == "20261124T091500-ab12"
        with pytest.raises(UnknownSessionError, match="matches several sessions"):
            resolve_id(db, "2026112")
        with pytest.raises(UnknownSessionError, match="no session"):
            resolve_id(db, "2025")
        with pytest.raises(UnknownSessionError):
            resolve_id(db, "")
