"""CSAFE codec: the byte vectors of docs/protocols.md, "CSAFE", and fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadctl.drivers import csafe_codec as codec
from treadctl.drivers.csafe import stop_frame
from treadctl.drivers.csafe_codec import (
    BadFrame,
    Cmd,
    Command,
    FrameStatus,
    Request,
    RequestDecoder,
    State,
    Status,
    Unit,
)
from treadctl.drivers.errors import CodecError


@pytest.mark.parametrize(
    ("commands", "frame"),
    [
        ([Command(Cmd.GET_STATUS)], "F1 80 80 F2"),
        ([Command(Cmd.GO_IN_USE)], "F1 85 85 F2"),
        ([Command(Cmd.GO_IDLE)], "F1 82 82 F2"),
        ([Command(Cmd.GET_SPEED)], "F1 A5 A5 F2"),
        ([Command(Cmd.GET_GRADE)], "F1 A8 A8 F2"),
        ([codec.set_speed(50, Unit.KMH_TENTHS)], "F1 25 03 32 00 31 25 F2"),
        ([codec.set_speed(30, Unit.MPH_TENTHS)], "F1 25 03 1E 00 11 29 F2"),
        ([codec.set_grade(50)], "F1 28 03 32 00 4C 55 F2"),
        (
            [Command(Cmd.GO_IN_USE), codec.set_speed(20, Unit.KMH_TENTHS)],
            "F1 85 25 03 14 00 31 86 F2",
        ),
        # 241 = F1 in the contents: stuffed as F3 01
        ([codec.set_speed(241, Unit.KMH_TENTHS)], "F1 25 03 F3 01 00 31 E6 F2"),
        # contents 25 03 E6 00 31 XOR to F1: the checksum is stuffed too (PyRow gets this wrong)
        ([codec.set_speed(230, Unit.KMH_TENTHS)], "F1 25 03 E6 00 31 F3 01 F2"),
    ],
)
def test_request_frames_match_the_vectors(commands: list[Command], frame: str) -> None:
    assert codec.request(commands) == bytes.fromhex(frame)
    # and the console side reads back what was sent
    assert RequestDecoder().feed(bytes.fromhex(frame)) == [Request(tuple(commands))]


def test_the_e_stop_frame() -> None:
    # SetSpeed 0 (0.1 km/h), then GoIdle: XOR(25 03 00 00 31 82) = 95
    assert stop_frame("kmh") == bytes.fromhex("F1 25 03 00 00 31 82 95 F2")
    assert stop_frame("mph") == bytes.fromhex("F1 25 03 00 00 11 82 B5 F2")


def test_stuffing_covers_every_flag_byte() -> None:
    assert codec.stuff(bytes.fromhex("F0 F1 F2 F3 EF")) == bytes.fromhex(
        "F3 00 F3 01 F3 02 F3 03 EF"
    )
    assert codec.unstuff(bytes.fromhex("F3 00 F3 01 F3 02 F3 03 EF")) == bytes.fromhex(
        "F0 F1 F2 F3 EF"
    )
    for bad in ("F3 04", "F3", "AA F1 BB"):
        with pytest.raises(CodecError):
            codec.unstuff(bytes.fromhex(bad))


def test_the_reference_frame_of_csafe_fitness() -> None:
    contents, used = codec.split_frame(bytes.fromhex("F1 DE AD BE EF 22 F2"))
    assert (contents, used) == (bytes.fromhex("DE AD BE EF"), 7)


def test_a_real_console_reply_decoded() -> None:
    # qdomyos-zwift #1045: GetSpeed answered by a "CT5HRT" console
    reply, used = codec.parse_reply(bytes.fromhex("F1 09 A5 03 35 00 52 C8 F2"))
    assert used == 9
    assert reply is not None
    assert reply.status == Status(toggle=False, previous=FrameStatus.OK, state=State.OFFLINE)
    assert reply.answers == (Command(Cmd.GET_SPEED, bytes.fromhex("35 00 52")),)
    value, unit = codec.decode_int_unit(bytes.fromhex("35 00 52"))
    assert (value, unit) == (53, Unit.REVS_PER_MIN)
    with pytest.raises(CodecError, match="52 \\(REVS_PER_MIN\\) is not a belt speed"):
        codec.speed_kmh(value, unit)


def test_status_byte_fields() -> None:
    # the capture's next frame: frame toggle set, same state
    reply, _ = codec.parse_reply(bytes.fromhex("F1 89 89 F2"))
    assert reply is not None
    assert reply.status == Status(True, FrameStatus.OK, State.OFFLINE)
    assert reply.answers == ()
    assert Status.decode(0x95) == Status(True, FrameStatus.REJECT, State.IN_USE)
    assert Status.decode(0x22) == Status(False, FrameStatus.BAD, State.IDLE)
    assert Status.decode(0x3A).state == 0x0A  # a state the table does not name stays a number
    for byte in range(256):  # bit 6 is reserved
        if not byte & 0x40 and byte & 0x0F in State._value2member_map_:
            assert Status.decode(byte).encode() == byte


def test_reply_with_two_answers_and_units() -> None:
    frame = codec.encode_reply(
        Status(True, FrameStatus.OK, State.IN_USE),
        [
            Command(Cmd.GET_SPEED, codec.int_unit(32, Unit.KMH_TENTHS)),
            Command(Cmd.GET_GRADE, codec.int_unit(45, Unit.GRADE_TENTHS)),
        ],
    )
    reply, _ = codec.parse_reply(frame)
    assert reply is not None
    speed = reply.answer(Cmd.GET_SPEED)
    grade = reply.answer(Cmd.GET_GRADE)
    assert speed is not None
    assert grade is not None
    assert codec.speed_kmh(*codec.decode_int_unit(speed)) == pytest.approx(3.2)
    assert codec.grade_pct(*codec.decode_int_unit(grade)) == pytest.approx(4.5)
    assert codec.speed_kmh(20, Unit.MPH_TENTHS) == pytest.approx(3.218688)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("F1 09 A5 03 35 00 52 C9 F2", "checksum"),
        ("AA F1 80 80 F2", "noise"),
        ("F0 01 02 80 80 F2", "extended"),
        ("F1 F2", "empty frame"),
        ("F1 09 A5 05 35 00 52 CE F2", "announces 5 bytes"),
        ("F1 F3 07 F2", "escapes"),
    ],
)
def test_bad_replies_raise_codec_errors(frame: str, error: str) -> None:
    with pytest.raises(CodecError, match=error):
        codec.parse_reply(bytes.fromhex(frame))


def test_an_incomplete_reply_asks_for_more() -> None:
    assert codec.parse_reply(bytes.fromhex("F1 09 A5 03")) == (None, 0)
    assert codec.parse_reply(b"") == (None, 0)


def test_the_console_decoder_resynchronises() -> None:
    dec = RequestDecoder()
    # noise, then a frame split over two reads, then a frame cut short by a new start flag
    assert dec.feed(bytes.fromhex("00 13 F1 85")) == []
    assert dec.feed(bytes.fromhex("85 F2 F1 25 03")) == [Request((Command(Cmd.GO_IN_USE),))]
    out = dec.feed(bytes.fromhex("F1 82 82 F2 F1 80 81 F2"))
    assert isinstance(out[0], BadFrame)
    assert out[1] == Request((Command(Cmd.GO_IDLE),))
    assert isinstance(out[2], BadFrame)
    assert "checksum" in out[2].reason


# --- fuzzing ------------------------------------------------------------------------------------

commands = st.lists(
    st.one_of(
        st.integers(0x80, 0xFF).map(Command),
        st.builds(Command, st.integers(0x00, 0x7F), st.binary(max_size=8)),
    ),
    max_size=6,
)


@given(commands)
def test_requests_round_trip(cmds: list[Command]) -> None:
    frame = codec.request(cmds)
    body = frame[1:-1]
    assert not any(b in (0xF0, 0xF1, 0xF2) for b in body)  # flags never inside a frame
    assert RequestDecoder().feed(frame) == [Request(tuple(cmds))]


@given(
    st.integers(0, 255),
    st.lists(st.builds(Command, st.integers(0, 255), st.binary(max_size=8)), max_size=5),
)
def test_replies_round_trip(status: int, answers: list[Command]) -> None:
    status &= 0xBF  # bit 6 is reserved
    if status & 0x0F not in State._value2member_map_:
        status &= 0xF0
    frame = codec.encode_reply(Status.decode(status), answers)
    reply, used = codec.parse_reply(frame)
    assert used == len(frame)
    assert reply is not None
    assert reply.status.encode() == status
    assert list(reply.answers) == answers


@given(st.binary(max_size=120))
def test_garbage_never_raises_anything_but_codec_error(data: bytes) -> None:
    try:
        reply, used = codec.parse_reply(data)
    except CodecError:
        return
    assert 0 <= used <= len(data)
    assert (reply is None) == (used == 0)


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_the_console_decoder_survives_any_bytes(chunks: list[bytes]) -> None:
    dec = RequestDecoder()
    for chunk in chunks:
        for item in dec.feed(chunk):
            assert isinstance(item, Request | BadFrame)


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4))
def test_a_good_frame_after_garbage_is_still_found(values: list[int]) -> None:
    dec = RequestDecoder()
    dec.feed(bytes(v & 0xFF for v in values if v & 0xFF != 0xF1))  # noise without a start flag
    frame = codec.request([codec.set_speed(values[0], Unit.KMH_TENTHS)])
    assert dec.feed(frame) == [Request((codec.set_speed(values[0], Unit.KMH_TENTHS),))]


def _reading(data: bytes) -> None:
    """What the driver makes of one answer's data: speed or grade, or a CodecError."""
    with contextlib.suppress(CodecError):
        value, unit = codec.decode_int_unit(data)
        with contextlib.suppress(CodecError):
            assert codec.speed_kmh(value, unit) >= 0
        with contextlib.suppress(CodecError):
            assert codec.grade_pct(value, unit) >= 0


@given(st.binary(max_size=60))
def test_well_framed_replies_of_any_contents_only_raise_codec_error(contents: bytes) -> None:
    """Random bytes rarely get past the checksum; these do (flags, stuffing and checksum are
    right), so the decoding behind the framing is what gets fuzzed."""
    frame = codec.encode_frame(contents)
    try:
        reply, used = codec.parse_reply(frame)
    except CodecError:
        return
    assert reply is not None
    assert used == len(frame)
    for answer in reply.answers:
        _reading(answer.data)
    assert isinstance(reply.status.state, State | int)
