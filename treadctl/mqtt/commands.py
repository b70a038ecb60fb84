"""Command decoding: a payload on `…/cmd/NAME` into a controller Command, and answers back.

Validation is requests.py's; what is decided here needs state: the program chosen with `select`
(kept here, published in the state), and what `set` keeps of a running manual session. Answers
go to `…/response/NAME` and, for an MQTT 5 request with a response topic, there too with its
correlation data (docs/mqtt.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from treadctl.core import commands as cmd
from treadctl.core.commands import Command, Result
from treadctl.core.device import WalkDirection
from treadctl.core.person import PersonLimits
from treadctl.core.state import Mode, Snapshot
from treadctl.mqtt import requests
from treadctl.mqtt.outbox import Outgoing
from treadctl.mqtt.requests import Request, RequestError, RequestId
from treadctl.mqtt.topics import Topics

SIMPLE: dict[str, Command] = {
    "stop": cmd.Stop(),
    "pause": cmd.Pause(),
    "resume": cmd.Resume(),
    "skip": cmd.Skip(),
    "reset": cmd.Reset(),
    "heartbeat": cmd.Heartbeat(),
}


class CommandDecoder:
    def __init__(self, programs: Sequence[str]) -> None:
        self.programs: tuple[str, ...] = tuple(programs)
        self.selected_program: str | None = None

    def decode(
        self, name: str, payload: bytes, snap: Snapshot | None
    ) -> tuple[Request, Command | None]:
        """The request and its command; None for `select`, which is done here. Raises
        RequestError (with the request's id when it was readable) for anything refused."""
        request = requests.parse_request(name, payload)
        return request, self._to_command(name, request, snap)

    def _to_command(self, name: str, request: Request, snap: Snapshot | None) -> Command | None:
        match request:
            case requests.StartRequest(
                program=program, parameters=parameters, person=person, limits=limits
            ):
                program = program or self.selected_program
                if program is None:
                    raise RequestError(
                        "invalid_field",
                        'no program given and none selected: send {"program": NAME}',
                        request.id,
                    )
                return cmd.Start(program, parameters, person, person_limits(limits))
            case requests.SetRequest(
                speed_kmh=speed, walk=walk, incline_pct=incline, person=person, limits=limits
            ):
                keep_walk, keep_incline = manual_target(snap)
                return cmd.ManualSet(
                    speed,
                    WalkDirection(walk) if walk is not None else keep_walk,
                    incline if incline is not None else keep_incline,
                    person,
                    person_limits(limits),
                )
            case requests.SelectRequest(program=program):
                if program not in self.programs:
                    raise RequestError(
                        "unknown_program", f"no program named {program!r}", request.id
                    )
                self.selected_program = program
                return None
        return SIMPLE[name]


def person_limits(limits: requests.LimitsRequest | None) -> PersonLimits | None:
    return None if limits is None else PersonLimits(**limits.model_dump())


def manual_target(snap: Snapshot | None) -> tuple[WalkDirection, float]:
    """What `set` keeps when a field is omitted: the running manual session's walk and
    incline; forward and flat otherwise."""
    if snap is not None and snap.mode is Mode.RUNNING and snap.program == "manual":
        return snap.target.walk, snap.target.incline_pct
    return WalkDirection.FORWARD, 0.0


def answers(
    topics: Topics, name: str, request_id: RequestId, result: Result, props: Properties | None
) -> list[Outgoing]:
    """The response on `…/response/NAME`, and where an MQTT 5 request asked for it."""
    payload = requests.response_payload(
        request_id, ok=result.ok, code=result.code, message=result.message
    )
    out = [Outgoing(topics.response(name), payload)]
    response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
    if isinstance(response_topic, str) and response_topic and "#" not in response_topic:
        out_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        correlation = getattr(props, "CorrelationData", None)
        if correlation is not None:
            out_props.CorrelationData = correlation
        out.append(Outgoing(response_topic, payload, properties=out_props))
    return out


def as_bytes(payload: object) -> bytes:
    """aiomqtt's payload (bytes, or str/int/float/None as paho allows) as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
