"""Command decoding and answers (treadctl/mqtt/commands.py) without a broker or a controller."""

from __future__ import annotations

import dataclasses
import json

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt.snapshots import idle_snapshot, running_snapshot, topics_for
from treadctl.core import commands as cmd
from treadctl.core.commands import Result
from treadctl.core.device import WalkDirection
from treadctl.core.person import PersonLimits
from treadctl.mqtt.commands import CommandDecoder, answers
from treadctl.mqtt.requests import RequestError

PROGRAMS = ["backward-intervals", "chang2021-stroke"]


def test_start_without_a_program_runs_the_selected_one() -> None:
    decoder = CommandDecoder(PROGRAMS)
    with pytest.raises(RequestError) as refused:
        decoder.decode("start", b'{"id": 1}', None)
    assert (refused.value.code, refused.value.id) == ("invalid_field", 1)
    _, command = decoder.decode("select", b'{"program": "chang2021-stroke"}', None)
    assert command is None  # done by the decoder
    assert decoder.selected_program == "chang2021-stroke"
    _, command = decoder.decode("start", b"{}", None)
    assert command == cmd.Start("chang2021-stroke", {})


def test_select_refuses_an_unknown_program_and_keeps_the_selection() -> None:
    decoder = CommandDecoder(PROGRAMS)
    decoder.decode("select", b'{"program": "backward-intervals"}', None)
    with pytest.raises(RequestError) as refused:
        decoder.decode("select", b'{"id": "s", "program": "nope"}', None)
    assert (refused.value.code, refused.value.id) == ("unknown_program", "s")
    assert decoder.selected_program == "backward-intervals"
    decoder.programs = ("nope",)  # a reload's new list
    decoder.decode("select", b'{"program": "nope"}', None)
    assert decoder.selected_program == "nope"


def test_set_keeps_the_running_manual_sessions_walk_and_incline() -> None:
    decoder = CommandDecoder(PROGRAMS)
    manual = dataclasses.replace(running_snapshot(), program="manual")
    _, command = decoder.decode("set", b'{"speed_kmh": 1.5}', manual)
    assert command == cmd.ManualSet(1.5, WalkDirection.BACKWARD, manual.target.incline_pct)
    # not a manual session (a program runs), or idle: forward and flat
    for snap in (running_snapshot(), idle_snapshot(), None):
        _, command = decoder.decode("set", b'{"speed_kmh": 1.5}', snap)
        assert command == cmd.ManualSet(1.5, WalkDirection.FORWARD, 0.0)


def _props(response_topic: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = response_topic
    props.CorrelationData = b"abc"
    return props


def test_answers_go_to_the_response_topic_and_where_an_mqtt5_request_asked() -> None:
    topics = topics_for("t1")
    plain = answers(topics, "pause", 7, Result.error("busy", "try again"), None)
    assert [a.topic for a in plain] == [topics.response("pause")]
    assert json.loads(plain[0].payload) == {
        "id": 7,
        "ok": False,
        "error": {"code": "busy", "message": "try again"},
    }
    asked = answers(topics, "pause", 7, Result.success(), _props("my/replies"))
    assert [a.topic for a in asked] == [topics.response("pause"), "my/replies"]
    assert asked[1].properties is not None
    assert getattr(asked[1].properties, "CorrelationData", None) == b"abc"
    wildcard = answers(topics, "pause", 7, Result.success(), _props("my/#"))
    assert [a.topic for a in wildcard] == [topics.response("pause")]


def test_start_and_set_carry_a_person_and_their_limits() -> None:
    decoder = CommandDecoder(PROGRAMS)
    payload = {
        "program": "chang2021-stroke",
        "person": "mrs-k",
        "limits": {"max_speed_backward_kmh": 1.5, "heart_rate_max_bpm": 120},
    }
    _, command = decoder.decode("start", json.dumps(payload).encode(), None)
    assert command == cmd.Start(
        "chang2021-stroke",
        {},
        "mrs-k",
        PersonLimits(max_speed_backward_kmh=1.5, heart_rate_max_bpm=120),
    )
    _, command = decoder.decode("set", b'{"speed_kmh": 1, "person": "p-1", "limits": {}}', None)
    assert command == cmd.ManualSet(1.0, WalkDirection.FORWARD, 0.0, "p-1", PersonLimits())


@pytest.mark.parametrize(
    ("payload", "code", "names"),
    [
        (b'{"program": "x", "person": "Mrs K"}', "invalid_field", "person"),
        (b'{"program": "x", "person": ""}', "invalid_field", "person"),
        (b'{"program": "x", "person": 7}', "invalid_field", "person"),
        (b'{"program": "x", "limits": {"speed": 1}}', "invalid_field", "limits.speed"),
        (b'{"program": "x", "limits": {"max_incline_pct": -1}}', "out_of_range", "limits"),
        (b'{"program": "x", "limits": {"max_speed_backward_kmh": 0}}', "out_of_range", "limits"),
        (b'{"program": "x", "limits": {"heart_rate_max_bpm": 1.5}}', "invalid_field", "limits"),
        (b'{"program": "x", "limits": [1]}', "invalid_field", "limits"),
    ],
)
def test_a_bad_person_or_limit_is_refused_naming_the_field(
    payload: bytes, code: str, names: str
) -> None:
    with pytest.raises(RequestError) as refused:
        CommandDecoder(PROGRAMS).decode("start", payload, None)
    assert refused.value.code == code
    assert names in refused.value.message
