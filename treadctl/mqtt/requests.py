"""Command payloads in, responses out: validated by pydantic, errors with stable codes.

A payload is a JSON object. Its optional `id` (a string or an integer) is echoed in the response
so a client can match answers to requests. An empty payload is not a command (`empty_payload`):
it is what clearing a retained message (`mosquitto_pub -r -n`) delivers to subscribers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from treadctl.config.models import CEILING_INCLINE_PCT, CEILING_SPEED_FORWARD_KMH
from treadctl.core.person import PERSON_ID

MAX_PAYLOAD = 16 * 1024
OUT_OF_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)
RequestId = str | int | None


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    id: Annotated[str, Field(max_length=128)] | int | None = None


class EmptyRequest(Request):
    """stop, pause, resume, skip, estop, reset, heartbeat: nothing but the optional id."""


PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class LimitsRequest(BaseModel):
    """A person's limits (docs/mqtt.md, People): each optional, only ever tightening."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    max_speed_backward_kmh: PositiveNumber | None = None
    max_speed_forward_kmh: PositiveNumber | None = None
    max_incline_pct: PositiveNumber | None = None
    heart_rate_max_bpm: Annotated[int, Field(gt=0, le=250)] | None = None


PersonId = Annotated[str, Field(pattern=f"^{PERSON_ID.pattern}$")]


class StartRequest(Request):
    program: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """A program name; omitted: the program chosen with `select`."""
    parameters: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    person: PersonId | None = None
    limits: LimitsRequest | None = None


class SetRequest(Request):
    speed_kmh: Annotated[float, Field(ge=0, le=CEILING_SPEED_FORWARD_KMH, allow_inf_nan=False)]
    walk: Literal["forward", "backward"] | None = None
    """Omitted: keep the current walk direction (forward when idle)."""
    incline_pct: (
        Annotated[float, Field(ge=0, le=CEILING_INCLINE_PCT, allow_inf_nan=False)] | None
    ) = None
    """Omitted: keep the current incline (flat when idle)."""
    person: PersonId | None = None
    limits: LimitsRequest | None = None


class SelectRequest(Request):
    program: Annotated[str, Field(min_length=1, max_length=128)]


MODELS: dict[str, type[Request]] = {
    "start": StartRequest,
    "set": SetRequest,
    "select": SelectRequest,
    **dict.fromkeys(
        ("stop", "pause", "resume", "skip", "estop", "reset", "heartbeat"), EmptyRequest
    ),
}


@dataclass(frozen=True, slots=True)
class RequestError(Exception):
    code: str
    message: str
    id: RequestId = None


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _load_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise RequestError("invalid_json", f"payload larger than {MAX_PAYLOAD} bytes")
    if not payload.strip():
        raise RequestError(
            "empty_payload",
            "an empty payload is not a command (clearing a retained message sends one); "
            "send a JSON object such as {}",
        )
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RequestError("invalid_json", f"payload is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(
            "invalid_json", f"payload must be a JSON object, not {type(data).__name__}"
        )
    return data


def _echo_id(data: dict[str, Any]) -> RequestId:
    value = data.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= 128):
        return value
    return None


def peek_id(payload: bytes) -> RequestId:
    """The id of a payload that may be invalid in every other way (for estop's answer)."""
    try:
        return _echo_id(_load_object(payload))
    except RequestError:
        return None


def parse_request(name: str, payload: bytes) -> Request:
    """The validated request; raises RequestError with a stable code and a readable message."""
    model = MODELS.get(name)
    if model is None:
        known = ", ".join(sorted(MODELS))
        raise RequestError("unknown_command", f"no command {name!r}; commands: {known}")
    data = _load_object(payload)
    request_id = _echo_id(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        code = "out_of_range" if error["type"] in OUT_OF_RANGE_ERRORS else "invalid_field"
        if error["type"] == "extra_forbidden":
            message = f"unknown field {where!r} for {name}"
        else:
            message = f"{where}: {error['msg']}"
        raise RequestError(code, message, request_id) from None


def response_payload(
    request_id: RequestId, *, ok: bool, code: str = "", message: str = ""
) -> bytes:
    body: dict[str, Any] = {"id": request_id, "ok": ok}
    if ok:
        body["error"] = None
        if message:
            body["message"] = message
    else:
        body["error"] = {"code": code, "message": message}
    return json.dumps(body).encode()


def parse_heart_rate(payload: bytes, field: str) -> int:
    """Beats per minute from `{"<field>": 72}` or a bare `72`; ValueError otherwise."""
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"heart rate payload is not JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get(field)
    if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
        raise ValueError(f"heart rate must be a number or {{{field!r}: number}}")
    bpm = round(data)
    if not 20 <= bpm <= 250:  # outside any human heart rate: a broken sensor
        raise ValueError(f"heart rate {bpm} bpm is not plausible")
    return bpm
