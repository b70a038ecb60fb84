"""Every treadmill on the broker as one tile, from what its daemon publishes (docs/mqtt.md):
retained `availability` and `state`, `telemetry`, `event`. Pure: the caller passes the time.

A tile never shows old data as live: it is `stale` while its daemon is offline, and when no
state or telemetry came for more than STALE_S (the daemon sends telemetry at 5 Hz even when
idle). A retained `state` delivered on subscribing is shown but proves nothing about now, so
it does not count as seen.

The daemon publishes no time left in the session: it is worked out as the session's planned
length (`session_started.planned_s`) less the time walked (`telemetry.elapsed_s`, which stops
while paused), never less than what is left of the current phase. It is unknown (None) for a
session that started before the service heard it, and for a manual one. A `remaining_s` in the
telemetry, should a daemon send it, is taken as it is.

A start held until it is confirmed at the treadmill (the state's `awaiting`, docs/safety.md
"Supervised starts") is `awaiting`: a sentence for the therapist, None when nothing waits.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

STALE_S = 3.0
MAX_DEVICES = 500  # a publisher inventing device ids must not fill the service's memory
KINDS = frozenset({"availability", "state", "telemetry", "event"})
MODES = frozenset({"idle", "running", "paused", "stopping", "estop", "fault"})
ESTOP_MODE = "estop"
# The clinic service's own `{prefix}/clinic/availability` matches `{prefix}/+/availability`.
NOT_A_DEVICE = "clinic"
TIMES = ("elapsed_s", "phase_remaining_s", "remaining_s")


class PayloadError(ValueError):
    """A daemon's message that cannot be read; the message names the field. Nothing changes."""


@dataclass(frozen=True, slots=True)
class Tile:
    device: str
    online: bool | None = None  # None: no availability heard yet
    mode: str | None = None
    person: str | None = None
    program: str | None = None
    phase: str | None = None
    walk: str | None = None
    belt: str | None = None
    speed_kmh: float | None = None  # actual, unsigned
    target_kmh: float | None = None
    incline_pct: float | None = None
    time_left_s: float | None = None
    heart_rate_bpm: int | None = None
    estop_latched: bool = False
    estop_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    awaiting: str | None = None  # a start waiting to be confirmed at the treadmill, said so
    last_seen: float | None = None  # the clock's time of the last live state or telemetry
    stale: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: json.loads(json.dumps(v)) if isinstance(v := getattr(self, f.name), dict) else v
            for f in dataclasses.fields(self)
        }


@dataclass(slots=True)
class _Session:
    """What the tile needs to remember beyond its own fields to work out the time left."""

    id: str | None = None
    planned_s: float | None = None
    elapsed_s: float | None = None
    phase_remaining_s: float | None = None
    remaining_s: float | None = None  # as a daemon sends it, if it does


class Fleet:
    def __init__(self, stale_s: float = STALE_S, max_devices: int = MAX_DEVICES) -> None:
        self.stale_s = stale_s
        self.max_devices = max_devices
        self._tiles: dict[str, Tile] = {}
        self._sessions: dict[str, _Session] = {}

    def tiles(self) -> list[Tile]:
        return [self._tiles[d] for d in sorted(self._tiles)]

    def get(self, device: str) -> Tile | None:
        return self._tiles.get(device)

    def apply(
        self, device: str, kind: str, payload: bytes, now: float, *, retained: bool = False
    ) -> Tile | None:
        """Take one message; the tile when it changed, else None. A change of `last_seen` alone
        is no change (`check` reports the tile going stale). PayloadError for a malformed one."""
        if device == NOT_A_DEVICE or kind not in KINDS:
            return None
        if device not in self._tiles and len(self._tiles) >= self.max_devices:
            raise PayloadError(f"{device}: more than {self.max_devices} treadmills; not shown")
        old = self._tiles.get(device) or Tile(device)
        session = self._sessions.get(device) or _Session()
        changes: dict[str, Any]
        if kind == "availability":
            changes = {"online": _availability(payload)}
        else:
            data = _json_object(payload, kind)
            if kind == "state":
                changes = _state(data, session)
            elif kind == "telemetry":
                changes = _telemetry(data, session)
            else:
                changes = _event(data, session)
            if kind != "event" and not retained:
                changes["last_seen"] = now
        tile = dataclasses.replace(old, **changes)
        tile = dataclasses.replace(tile, time_left_s=_time_left(tile, session))
        tile = dataclasses.replace(tile, stale=self._is_stale(tile, now))
        new = device not in self._tiles
        self._tiles[device] = tile
        self._sessions[device] = session
        if not new and tile == dataclasses.replace(old, last_seen=tile.last_seen):
            return None
        return tile

    def check(self, now: float) -> list[Tile]:
        """The tiles that have just gone stale (no state or telemetry for too long)."""
        gone: list[Tile] = []
        for device, tile in self._tiles.items():
            if not tile.stale and self._is_stale(tile, now):
                self._tiles[device] = stale = dataclasses.replace(tile, stale=True)
                gone.append(stale)
        return gone

    def _is_stale(self, tile: Tile, now: float) -> bool:
        return tile.online is False or tile.last_seen is None or now - tile.last_seen > self.stale_s


def _availability(payload: bytes) -> bool | None:
    text = payload.strip()
    if text == b"online":
        return True
    if text == b"offline":
        return False
    if not text:
        return None  # a cleared retained message: nothing known
    raise PayloadError("availability: 'online' or 'offline'")


def _json_object(payload: bytes, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise PayloadError(f"{kind}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PayloadError(f"{kind}: not a JSON object")
    return data


def _text(data: dict[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise PayloadError(f"{where}.{name}: a string or null")


def _number(data: dict[str, Any], name: str, where: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"{where}.{name}: a number or null")
    return float(value)


def _object(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}.{name}: an object")
    return value


def _state(data: dict[str, Any], session: _Session) -> dict[str, Any]:
    mode = data.get("mode")
    if mode not in MODES:
        raise PayloadError(f"state.mode: one of {', '.join(sorted(MODES))}")
    target, actual = _object(data, "target", "state"), _object(data, "actual", "state")
    inputs = _object(data, "estop_inputs", "state")
    if not all(isinstance(v, dict) for v in inputs.values()):
        raise PayloadError("state.estop_inputs: an object of objects")
    speed = _number(actual, "speed_kmh", "state.actual")
    changes = {
        "mode": mode,
        "person": _text(data, "person", "state"),
        "program": _text(data, "program", "state"),
        "phase": _text(data, "phase", "state"),
        "walk": _text(actual, "walk", "state.actual") or _text(target, "walk", "state.target"),
        "belt": _text(actual, "belt", "state.actual"),
        "speed_kmh": None if speed is None else abs(speed),
        "target_kmh": _number(target, "speed_kmh", "state.target"),
        "incline_pct": _number(actual, "incline_pct", "state.actual"),
        "estop_latched": mode == ESTOP_MODE,
        "estop_inputs": inputs,
        "awaiting": _awaiting(data),
    }
    session_id = _text(data, "session_id", "state")
    if session_id != session.id:  # another session (or none): what was known is not its
        session.id, session.planned_s, session.elapsed_s = session_id, None, None
        session.phase_remaining_s = session.remaining_s = None
    return changes


CONFIRMED_BY = {"button": "GO on the button box"}


def _awaiting(data: dict[str, Any]) -> str | None:
    """The state's `awaiting` as a sentence (None: nothing waits, or a daemon without it)."""
    if data.get("awaiting") is None:
        return None
    held = _object(data, "awaiting", "state")
    program = _text(held, "program", "state.awaiting") or "a session"
    what = "a manual session" if program == "manual" else program
    how = _text(held, "confirm", "state.awaiting")
    by = CONFIRMED_BY.get(how or "") or _text(held, "detail", "state.awaiting") or "in person"
    left = _number(held, "expires_s", "state.awaiting")
    sentence = f"waiting for the start of {what} to be confirmed at the treadmill ({by})"
    return sentence if left is None else f"{sentence}, {max(0, math.ceil(left))} s left"


def _telemetry(data: dict[str, Any], session: _Session) -> dict[str, Any]:
    speed = _number(data, "speed_kmh", "telemetry")
    heart_rate = _number(data, "heart_rate_bpm", "telemetry")
    changes = {
        "speed_kmh": None if speed is None else abs(speed),
        "belt": _text(data, "belt", "telemetry"),
        "incline_pct": _number(data, "incline_pct", "telemetry"),
        "heart_rate_bpm": None if heart_rate is None else round(heart_rate),
    }
    times = [_number(data, name, "telemetry") for name in TIMES]
    session.elapsed_s, session.phase_remaining_s, session.remaining_s = times  # all read
    return {k: v for k, v in changes.items() if k in data}  # a field left out keeps its value


def _event(data: dict[str, Any], session: _Session) -> dict[str, Any]:
    kind = _text(data, "type", "event")
    if kind == "session_started":
        session_id, planned_s = (
            _text(data, "session_id", "event"),
            _number(data, "planned_s", "event"),
        )
        session.id, session.planned_s = session_id, planned_s
        session.elapsed_s = session.phase_remaining_s = session.remaining_s = None
    elif kind == "session_finished":
        session.planned_s = None
    elif kind == "estop":  # at once; the state follows
        return {"estop_latched": True, "mode": ESTOP_MODE}
    return {}


def _time_left(tile: Tile, session: _Session) -> float | None:
    if tile.mode not in {"running", "paused", "stopping"}:
        return None
    if session.remaining_s is not None:
        return round(session.remaining_s, 1)
    if session.planned_s is None or session.elapsed_s is None:
        return session.phase_remaining_s  # at least the phase's, when nothing more is known
    left = max(0.0, session.planned_s - session.elapsed_s, session.phase_remaining_s or 0.0)
    return round(left, 1)
