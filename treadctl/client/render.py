"""How `treadctl status` and the command clients show the daemon's messages to a person.

Pure functions over the JSON payloads of docs/mqtt.md. They never fail on odd input: whatever a
broker hands over (another client's junk on the same topic, a newer daemon's extra fields) is
shown as best it can be.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from treadctl.core.durations import format_clock

NONE = "-"


def _text(value: object) -> str:
    return NONE if value is None or value == "" else str(value)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _number(value: object, fmt: str) -> str | None:
    number = _finite(value)
    return None if number is None else format(number, fmt)


def _clock(seconds: object) -> str | None:
    number = _finite(seconds)
    return None if number is None else format_clock(number)


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def response_line(name: str, response: dict[str, Any]) -> tuple[bool, str]:
    """(ok, the line for a person): `ok: started …` or `error CODE: message`."""
    if response.get("ok") is True:
        message = response.get("message")
        return True, f"ok: {message}" if message else f"ok: {name}"
    error = _as_dict(response.get("error"))
    code = error.get("code") or "error"
    message = error.get("message") or "(no message)"
    return False, f"error {code}: {message}"


def motion(value: object) -> str:
    """`1.20 km/h, walking backward, belt reverse, incline 0.0 %`."""
    data = _as_dict(value)
    speed = _number(data.get("speed_kmh"), ".2f")
    parts = [f"{speed} km/h" if speed is not None else "? km/h"]
    if data.get("walk"):
        parts.append(f"walking {data['walk']}")
    if data.get("belt"):
        parts.append(f"belt {data['belt']}")
    incline = _number(data.get("incline_pct"), ".1f")
    if incline is not None:
        parts.append(f"incline {incline} %")
    return ", ".join(parts)


def state_summary(state: dict[str, Any], *, device: str, availability: str | None) -> list[str]:
    """The block `treadctl status` prints."""
    shown = availability if availability is not None else "availability unknown"
    lines = [f"{device}: {shown}"]
    rows = [
        ("mode", _text(state.get("mode"))),
        ("program", _text(state.get("program"))),
        ("phase", _text(state.get("phase"))),
        ("session", _text(state.get("session_id"))),
        ("target", motion(state.get("target"))),
        ("actual", motion(state.get("actual"))),
        ("fault", _text(state.get("fault"))),
    ]
    if state.get("selected_program"):
        rows.append(("selected", str(state["selected_program"])))
    if state.get("person"):
        rows.insert(2, ("person", str(state["person"])))
    lines += [f"  {key:<9}{value}" for key, value in rows]
    return lines


def state_line(state: dict[str, Any]) -> str:
    """One line per state change for `status --watch`."""
    parts = [_text(state.get("mode"))]
    if state.get("program"):
        parts.append(f"program {state['program']}")
    if state.get("person"):
        parts.append(f"person {state['person']}")
    if state.get("phase"):
        parts.append(f"phase {state['phase']!r}")
    parts.append(f"target {motion(state.get('target'))}")
    actual = _number(_as_dict(state.get("actual")).get("speed_kmh"), ".2f")
    if actual is not None:
        parts.append(f"actual {actual} km/h")
    if state.get("fault"):
        parts.append(f"fault {state['fault']}")
    return "state " + "; ".join(parts)


def telemetry_line(data: dict[str, Any]) -> str:
    speed = _number(data.get("speed_kmh"), ".2f")
    parts = [f"{speed if speed is not None else '?'} km/h"]
    if data.get("belt"):
        parts.append(f"belt {data['belt']}")
    incline = _number(data.get("incline_pct"), ".1f")
    if incline is not None:
        parts.append(f"incline {incline} %")
    distance = _number(data.get("distance_m"), ".1f")
    if distance is not None:
        parts.append(f"{distance} m")
    elapsed = _clock(data.get("elapsed_s"))
    if elapsed is not None:
        parts.append(f"elapsed {elapsed}")
    step = data.get("phase_index")
    remaining = _clock(data.get("phase_remaining_s"))
    if step is not None:
        parts.append(f"step {step}" + (f" ({remaining} left)" if remaining else ""))
    bpm = _number(data.get("heart_rate_bpm"), ".0f")
    if bpm is not None:
        parts.append(f"{bpm} bpm")
    return "telemetry " + ", ".join(parts)


def event_line(data: dict[str, Any]) -> str:
    kind = _text(data.get("type"))
    details = {k: v for k, v in data.items() if k not in {"type", "ts", "session_id"}}
    if kind == "cue" and isinstance(details.get("text"), str):
        return f"event cue: {details['text']}"
    shown = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in details.items())
    return f"event {kind}" + (f" {shown}" if shown else "")


def stamp(ts: float) -> str:
    """Local wall-clock time with tenths, to prefix `status --watch` lines."""
    moment = dt.datetime.fromtimestamp(ts)  # noqa: DTZ006 - the user's local time
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 100_000}"
