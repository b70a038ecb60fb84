"""Trackmaster/Woodway codec against the byte literals of docs/protocols.md, Trackmaster/Woodway."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadctl.drivers import trackmaster_codec as codec
from treadctl.drivers.errors import CodecError
from treadctl.drivers.trackmaster_codec import (
    Ack,
    BadRequest,
    BeltState,
    Dialect,
    ErrorCode,
    ErrorReply,
    Op,
    Request,
    RequestDecoder,
    StateReply,
    ValueReply,
)

TM, WW = Dialect.TRACKMASTER, Dialect.WOODWAY


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (codec.encode_request(Op.START_WATCHDOG), "a0"),
        (codec.encode_request(Op.STOP), "a2"),
        (codec.encode_request(Op.AUTO_STOP), "aa"),
        (codec.set_speed(20, False, TM), "a3 30 30 32 30"),  # 2.0 mph
        (codec.set_speed(40, False, TM), "a3 30 30 34 30"),  # "0040" = 4.0 mph (manual)
        (codec.set_elevation(50), "a4 30 30 35 30"),  # 5 %
        (codec.set_speed(20, False, WW), "a3 30 30 32 30"),  # woodway forward 2.0 mph
        (codec.set_speed(20, True, WW), "a3 33 30 32 30"),  # woodway reverse 2.0 mph
        (codec.set_speed(125, True, WW), "a3 33 31 32 35"),  # reverse 12.5 mph
    ],
)
def test_requests_encode_to_documented_bytes(encoded: bytes, expected: str) -> None:
    assert encoded.hex(" ") == expected


def test_trackmaster_has_no_reverse() -> None:
    with pytest.raises(CodecError, match="no reverse"):
        codec.set_speed(20, True, TM)


def test_elevation_must_be_half_percent_steps() -> None:
    with pytest.raises(CodecError, match=r"0\.5 %"):
        codec.set_elevation(43)  # 4.3 % is refused by the treadmill with BE


@pytest.mark.parametrize(
    ("op", "wire", "expected", "used"),
    [
        (Op.START_WATCHDOG, "b0", Ack(Op.START_WATCHDOG), 1),
        (Op.SET_SPEED, "b3", Ack(Op.SET_SPEED), 1),
        (Op.SET_ELEVATION, "b4", Ack(Op.SET_ELEVATION), 1),
        (Op.AUTO_STOP, "ba", Ack(Op.AUTO_STOP), 1),
        (Op.GET_SPEED, "d1 30 30 32 30", ValueReply(Op.GET_SPEED, b"0020"), 5),
        (Op.GET_STATE, "d0 31", StateReply(BeltState.STOPPED), 2),
        (Op.GET_STATE, "d0 32", StateReply(BeltState.RUNNING_WATCHDOG), 2),
        (Op.GET_STATE, "d0 33 b3", StateReply(BeltState.RUNNING), 2),  # extra bytes not used
        (Op.GET_STATE, "d0 34", StateReply(0x34), 2),  # a digit the manuals do not name
        (Op.GET_STATE, "d0 30", StateReply(0x30), 2),
        (Op.SET_ELEVATION, "be", ErrorReply(ErrorCode.OUT_OF_RANGE), 1),
        (Op.SET_SPEED, "bf", ErrorReply(ErrorCode.ILLEGAL_COMMAND), 1),
        (Op.GET_SPEED, "bd", ErrorReply(ErrorCode.MASTER_TIMEOUT), 1),
    ],
)
def test_responses_parse(op: Op, wire: str, expected: codec.Response, used: int) -> None:
    assert codec.parse_response(op, bytes.fromhex(wire)) == (expected, used)


@pytest.mark.parametrize(
    ("op", "wire"), [(Op.GET_SPEED, ""), (Op.GET_SPEED, "d1 30 30"), (Op.GET_STATE, "d0")]
)
def test_incomplete_responses_ask_for_more(op: Op, wire: str) -> None:
    assert codec.parse_response(op, bytes.fromhex(wire)) == (None, 0)


@pytest.mark.parametrize(
    ("op", "wire"),
    [
        (Op.SET_SPEED, "b4"),
        (Op.GET_SPEED, "d2 30 30 30 30"),
        (Op.GET_STATE, "d0 b3"),  # not a digit: another answer's byte, or noise
        (Op.GET_STATE, "d0 41"),
        (Op.GET_STATE, "d0 00"),
        (Op.STOP, "00"),
    ],
)
def test_wrong_responses_are_codec_errors(op: Op, wire: str) -> None:
    with pytest.raises(CodecError):
        codec.parse_response(op, bytes.fromhex(wire))


def test_state_bytes_the_manuals_name_and_the_ones_they_do_not() -> None:
    assert StateReply(0x31).state is BeltState.STOPPED
    assert StateReply(0x34).state is None
    assert codec.belt_running(0x31, {}) is False
    assert codec.belt_running(0x32, {}) is True
    assert codec.belt_running(0x33, {}) is True
    assert codec.belt_running(0x34, {}) is None  # not known: the driver takes it as not running
    assert codec.belt_running(0x34, {0x34: True}) is True
    assert codec.belt_running(0x30, {0x30: False}) is False
    # A configured meaning never changes a documented byte.
    assert codec.belt_running(0x31, {0x31: True}) is False


@given(byte=st.integers(0, 255), known=st.dictionaries(st.integers(0, 255), st.booleans()))
def test_only_a_documented_or_configured_byte_says_running(
    byte: int, known: dict[int, bool]
) -> None:
    try:
        reply, used = codec.parse_response(Op.GET_STATE, bytes([0xD0, byte]))
    except CodecError:
        assert not 0x30 <= byte <= 0x39
        return
    assert isinstance(reply, StateReply)
    assert (reply.byte, used) == (byte, 2)
    running = codec.belt_running(reply.byte, known)
    if byte in (0x31, 0x32, 0x33):
        assert running is (byte != 0x31)
    else:
        assert running is known.get(byte)


def test_speed_readback() -> None:
    assert codec.decode_speed_field(b"0020", TM) == (20, False)
    assert codec.decode_speed_field(bytes.fromhex("33 30 32 30"), WW) == (20, True)  # reverse 2.0
    assert codec.decode_speed_field(b"0020", WW) == (20, False)
    with pytest.raises(CodecError):
        codec.decode_speed_field(b"1020", WW)  # woodway lead digit is 0 or 3 only
    with pytest.raises(CodecError):
        codec.decode_speed_field(b"00-2", TM)


def test_request_decoder_reads_opcodes_and_fields_across_chunks() -> None:
    dec = RequestDecoder(WW)
    assert dec.feed(bytes.fromhex("a0 a3 33 30")) == [Request(Op.START_WATCHDOG)]
    assert dec.feed(bytes.fromhex("32 30 c1")) == [
        Request(Op.SET_SPEED, b"3020"),
        Request(Op.GET_SPEED),
    ]


def test_request_decoder_never_loses_a_stop_inside_a_field() -> None:
    dec = RequestDecoder(TM)
    assert dec.feed(bytes.fromhex("a3 30 30 a2")) == [
        BadRequest(Op.SET_SPEED, ErrorCode.OUT_OF_RANGE),
        Request(Op.STOP),
    ]


def test_request_decoder_flags_unknown_opcodes_and_bad_digits() -> None:
    dec = RequestDecoder(TM)
    assert dec.feed(bytes.fromhex("ff a4 30 41")) == [
        BadRequest(0xFF, ErrorCode.ILLEGAL_COMMAND),
        BadRequest(Op.SET_ELEVATION, ErrorCode.OUT_OF_RANGE),
    ]


def test_dialects_differ_on_a9() -> None:
    assert RequestDecoder(WW).feed(b"\xa9") == [Request(Op.SET_WEIGHT_OR_START)]  # start, no timer
    assert RequestDecoder(TM).feed(b"\xa9") == []  # weight: waits for 4 digits
    assert RequestDecoder(TM).feed(b"\xa90070") == [Request(Op.SET_WEIGHT_OR_START, b"0070")]


@given(op=st.sampled_from(list(Op)), data=st.binary(max_size=64))
def test_fuzz_response_parser_only_raises_codec_error(op: Op, data: bytes) -> None:
    try:
        response, used = codec.parse_response(op, data)
    except CodecError:
        return
    assert 0 <= used <= len(data)
    assert (response is None) == (used == 0)


@given(dialect=st.sampled_from(list(Dialect)), chunks=st.lists(st.binary(max_size=32), max_size=8))
def test_fuzz_request_decoder_never_raises(dialect: Dialect, chunks: list[bytes]) -> None:
    dec = RequestDecoder(dialect)
    for chunk in chunks:
        for item in dec.feed(chunk):
            assert isinstance(item, Request | BadRequest)


@given(field=st.binary(min_size=0, max_size=6), dialect=st.sampled_from(list(Dialect)))
def test_fuzz_field_decoders_only_raise_codec_error(field: bytes, dialect: Dialect) -> None:
    for decode in (
        lambda: codec.decode_speed_field(field, dialect),
        lambda: codec.decode_digits(field),
    ):
        with contextlib.suppress(CodecError):
            decode()


@given(tenths=st.integers(0, 999), reverse=st.booleans())
def test_woodway_speed_field_round_trips(tenths: int, reverse: bool) -> None:
    field = codec.encode_speed_field(tenths, reverse, WW)
    assert codec.decode_speed_field(field, WW) == (tenths, reverse)
