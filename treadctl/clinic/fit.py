"""One session as a FIT activity file, for a home user's Garmin Connect or Strava.

The input is the session document the daemon sends (`treadctl.store.export.session_document`,
format "treadctl-session" v1). The file holds what a watch writes for an indoor walk: a file id,
timer start/stop events, one record a second (time, speed, distance, heart rate: the last sample
of each second, as FIT stamps records to the second), one lap, one session (sport walking,
sub-sport treadmill: backward walking is walked, and the sub-sport marks it indoor, without GPS)
and the activity. Speeds in the document are unsigned (the belt's direction is in `walk`); FIT
has no field for walking backward.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from treadctl.extras import CLINIC, MissingExtraError

try:
    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.profile.messages.activity_message import ActivityMessage
    from fit_tool.profile.messages.event_message import EventMessage
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.messages.lap_message import LapMessage
    from fit_tool.profile.messages.record_message import RecordMessage
    from fit_tool.profile.messages.session_message import SessionMessage
    from fit_tool.profile.profile_type import (
        Activity,
        Event,
        EventType,
        FileType,
        Manufacturer,
        Sport,
        SubSport,
    )
except ModuleNotFoundError as exc:  # the daemon's install has no fit-tool
    raise MissingExtraError(CLINIC, "a session's FIT file", exc.name) from exc

from treadctl.store.export import JSON_FORMAT, JSON_VERSION

SPORT, SUB_SPORT = Sport.WALKING, SubSport.TREADMILL
MAX_SPEED_MPS = 65.0  # the record's speed field: uint16 in mm/s
MAX_HEART_RATE = 254  # uint8, 255 is FIT's "invalid"


class FitDocumentError(ValueError):
    """A session document that cannot become a FIT file; the message names the field."""


@dataclass(frozen=True, slots=True)
class _Point:
    ts_ms: int
    speed_mps: float
    distance_m: float
    heart_rate: int | None
    elapsed_s: float


def _number(sample: Mapping[str, Any], key: str, n: int) -> float:
    value = sample.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FitDocumentError(f"samples[{n}].{key}: a finite number, not {value!r}")
    return float(value)


def _points(samples: object) -> list[_Point]:
    if not isinstance(samples, Sequence) or isinstance(samples, str | bytes):
        raise FitDocumentError("samples: a list of samples")
    if not samples:
        raise FitDocumentError("samples: the session has no samples, so there is nothing to write")
    points: list[_Point] = []
    for n, sample in enumerate(samples):
        if not isinstance(sample, Mapping):
            raise FitDocumentError(f"samples[{n}]: an object")
        ts = _number(sample, "ts", n)
        speed_mps = _number(sample, "speed_kmh", n) / 3.6
        if not 0 <= speed_mps <= MAX_SPEED_MPS:
            raise FitDocumentError(f"samples[{n}].speed_kmh: between 0 and {MAX_SPEED_MPS * 3.6}")
        distance = _number(sample, "distance_m", n)
        if distance < 0:
            raise FitDocumentError(f"samples[{n}].distance_m: not negative")
        if points and ts < points[-1].ts_ms / 1000:
            raise FitDocumentError(f"samples[{n}].ts: samples must be in time order")
        rate = sample.get("heart_rate_bpm")
        heart = (
            round(rate) if isinstance(rate, int | float) and 0 < rate <= MAX_HEART_RATE else None
        )
        elapsed = sample.get("elapsed_s")  # the session's clock, pauses excluded
        if isinstance(elapsed, bool) or not isinstance(elapsed, int | float):
            elapsed = ts - points[0].ts_ms / 1000 if points else 0.0
        points.append(_Point(round(ts * 1000), speed_mps, distance, heart, float(elapsed)))
    return points


def _per_second(points: list[_Point]) -> list[_Point]:
    """The last point of each whole second: FIT stamps records to the second, and a watch
    records once a second; two records with one timestamp upset the apps that import them."""
    kept: dict[int, _Point] = {}
    for point in points:
        kept[point.ts_ms // 1000] = point
    return [replace(p, ts_ms=second * 1000) for second, p in kept.items()]


def _check(document: object) -> tuple[Mapping[str, Any], list[_Point]]:
    if not isinstance(document, Mapping):
        raise FitDocumentError("document: a session document (an object)")
    if document.get("format") != JSON_FORMAT:
        raise FitDocumentError(f"format: {JSON_FORMAT!r} expected, not {document.get('format')!r}")
    if document.get("version") != JSON_VERSION:
        raise FitDocumentError(f"version: {JSON_VERSION} expected, not {document.get('version')!r}")
    session = document.get("session")
    if not isinstance(session, Mapping) or not isinstance(session.get("id"), str):
        raise FitDocumentError("session: an object with the session's id")
    return session, _points(document.get("samples"))


def _summary(message: LapMessage | SessionMessage, points: list[_Point]) -> None:
    """The figures a lap and a session both carry."""
    first, last = points[0], points[-1]
    elapsed = (last.ts_ms - first.ts_ms) / 1000
    message.timestamp = last.ts_ms
    message.start_time = first.ts_ms
    message.total_elapsed_time = elapsed
    # the timer excludes pauses: the session's own clock, as the daemon's summary counts it
    message.total_timer_time = min(elapsed, max(0.0, last.elapsed_s - first.elapsed_s)) or elapsed
    message.total_distance = last.distance_m  # the session's counter, from 0 at its start
    timer = message.total_timer_time or 0.0
    message.avg_speed = message.total_distance / timer if timer else 0.0
    message.max_speed = max(p.speed_mps for p in points)
    rates = [p.heart_rate for p in points if p.heart_rate is not None]
    if rates:
        message.avg_heart_rate = round(sum(rates) / len(rates))
        message.max_heart_rate = max(rates)
    message.sport = SPORT
    message.sub_sport = SUB_SPORT


def _event(ts_ms: int, kind: EventType) -> EventMessage:
    event = EventMessage()
    event.timestamp = ts_ms
    event.event = Event.TIMER
    event.event_type = kind
    return event


def fit_bytes(document: dict[str, Any]) -> bytes:
    """The FIT activity file of one session document; `FitDocumentError` (a ValueError) naming
    the field for a document of another format, or without samples."""
    session, points = _check(document)
    builder = FitFileBuilder(auto_define=True, strict=True)

    file_id = FileIdMessage()
    file_id.type = FileType.ACTIVITY
    file_id.manufacturer = Manufacturer.DEVELOPMENT.value
    file_id.product = 0
    # stable per session, so a re-upload is recognised as the same activity
    file_id.serial_number = zlib.crc32(session["id"].encode()) or 1
    file_id.time_created = points[0].ts_ms
    builder.add(file_id)
    builder.add(_event(points[0].ts_ms, EventType.START))

    for point in _per_second(points):
        record = RecordMessage()
        record.timestamp = point.ts_ms
        record.speed = point.speed_mps
        record.distance = point.distance_m
        if point.heart_rate is not None:
            record.heart_rate = point.heart_rate
        builder.add(record)

    builder.add(_event(points[-1].ts_ms, EventType.STOP_ALL))
    lap = LapMessage()
    lap.message_index = 0
    _summary(lap, points)
    builder.add(lap)
    summary = SessionMessage()
    summary.message_index = 0
    _summary(summary, points)
    summary.first_lap_index = 0
    summary.num_laps = 1
    builder.add(summary)

    activity = ActivityMessage()
    activity.timestamp = points[-1].ts_ms
    activity.num_sessions = 1
    activity.total_timer_time = summary.total_timer_time
    activity.type = Activity.MANUAL
    activity.event = Event.ACTIVITY
    activity.event_type = EventType.STOP
    builder.add(activity)
    return bytes(builder.build_bytes())
