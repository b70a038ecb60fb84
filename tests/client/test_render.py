"""What `treadctl status` prints of a state payload: the person only when a session names one."""

from __future__ import annotations

from treadctl.client.render import state_line, state_summary

STATE = {
    "mode": "running",
    "program": "manual",
    "person": "mrs-k",
    "phase": None,
    "session_id": "20261201T052000-ab12",
    "target": {"speed_kmh": 1.2, "walk": "backward", "belt": "reverse", "incline_pct": 0.0},
    "actual": {"speed_kmh": 1.18, "walk": "backward", "belt": "reverse", "incline_pct": 0.0},
    "fault": None,
}


def test_status_shows_the_person_of_the_session() -> None:
    lines = state_summary(STATE, device="treadmill", availability="online")
    assert lines[0] == "treadmill: online"
    assert "  person   mrs-k" in lines
    assert lines.index("  person   mrs-k") == lines.index("  program  manual") + 1
    assert "person mrs-k" in state_line(STATE)


def test_status_without_a_person_has_no_person_row() -> None:
    nobody = STATE | {"person": None}
    assert not any(
        "person" in line for line in state_summary(nobody, device="t", availability=None)
    )
    assert "person" not in state_line(nobody)
