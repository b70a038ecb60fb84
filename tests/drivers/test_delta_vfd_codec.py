"""Delta VFD codec: the frames of docs/protocols.md, "Delta VFD", CRC checked two ways, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, WriteSingleRegisterRequest

from treadctl.drivers import delta_vfd_codec as codec
from treadctl.drivers.delta_vfd_codec import (
    CommLoss,
    Drive,
    DriveStatus,
    Refused,
    Registers,
    Rotation,
    Written,
)
from treadctl.drivers.errors import CodecError

FRAMES = [
    (codec.write_register(1, codec.REG_COMMAND, codec.RUN_FORWARD), "01 06 20 00 00 12 02 07"),
    (codec.write_register(1, codec.REG_COMMAND, codec.RUN_REVERSE), "01 06 20 00 00 22 02 13"),
    (codec.write_register(1, codec.REG_COMMAND, codec.STOP), "01 06 20 00 00 01 43 CA"),
    (codec.write_register(1, codec.REG_FREQUENCY, 1000), "01 06 20 01 03 E8 D3 74"),
    (codec.read_registers(1, codec.REG_STATUS, 5), "01 03 21 00 00 05 8F F5"),
    (codec.read_registers(1, 0x2103, 1), "01 03 21 03 00 01 7E 36"),
]


@pytest.mark.parametrize(("built", "frame"), FRAMES)
def test_frames_match_the_vectors(built: bytes, frame: str) -> None:
    assert built == bytes.fromhex(frame)


@pytest.mark.parametrize(("built", "frame"), FRAMES)
def test_crc_checked_by_us_and_by_pymodbus(built: bytes, frame: str) -> None:
    raw = bytes.fromhex(frame)
    # ours: CRC-16/MODBUS over all but the last two bytes, low byte first
    assert codec.crc16(raw[:-2]).to_bytes(2, "little") == raw[-2:]
    assert codec.crc_ok(raw)
    # pymodbus's framer: its (byte-swapped) CRC and its own check
    assert FramerRTU.compute_CRC(raw[:-2]).to_bytes(2, "big") == raw[-2:]
    assert FramerRTU.check_CRC(raw[:-2], int.from_bytes(raw[-2:], "big"))
    broken = raw[:-1] + bytes([raw[-1] ^ 0x01])
    assert not codec.crc_ok(broken)


def test_crc_reference_example() -> None:
    # INVT's published example: read 2 words at 0004H from unit 1
    assert codec.crc_ok(bytes.fromhex("01 03 00 04 00 02 85 CA"))


def test_the_drive_side_decodes_the_host_frames() -> None:
    parsed, used = codec.parse_request(bytes.fromhex("01 06 20 00 00 22 02 13"))
    assert used == 8
    assert parsed is not None
    unit, pdu = parsed
    assert unit == 1
    assert isinstance(pdu, WriteSingleRegisterRequest)
    assert (pdu.address, list(pdu.registers)) == (0x2000, [0x0022])
    parsed, _ = codec.parse_request(bytes.fromhex("01 03 21 00 00 05 8F F5"))
    assert parsed is not None
    assert isinstance(parsed[1], ReadHoldingRegistersRequest)
    assert (parsed[1].address, parsed[1].count) == (0x2100, 5)


def test_responses() -> None:
    # an FC06 answer is the echo
    assert codec.parse_response(bytes.fromhex("01 06 20 01 03 E8 D3 74"), 1) == (
        Written(0x2001, 1000),
        8,
    )
    # FC03: 0x2000 = 0x0022, 0x2001 = 1000 (the raw read of §4)
    assert codec.parse_response(bytes.fromhex("01 03 04 00 22 03 E8 5A 87"), 1) == (
        Registers((0x22, 1000)),
        9,
    )
    # exception: FC06, illegal data address (§1.6)
    assert codec.parse_response(bytes.fromhex("01 86 02 C3 A1"), 1) == (Refused(6, 2), 5)
    assert codec.parse_response(bytes.fromhex("01 03 04 00 22"), 1) == (None, 0)
    with pytest.raises(CodecError, match="bad CRC"):
        codec.parse_response(bytes.fromhex("01 06 20 01 03 E8 D3 75"), 1)
    with pytest.raises(CodecError, match="unit 1, expected 2"):
        codec.parse_response(bytes.fromhex("01 06 20 01 03 E8 D3 74"), 2)


def test_status_registers() -> None:
    word = codec.status_word(Drive.RUNNING, Rotation.REVERSE)
    assert word == 0b11011
    status = DriveStatus.decode((0, word, 1000, 998, 41))
    assert status.drive is Drive.RUNNING
    assert status.reverse
    assert (status.frequency_cmd_hz, status.output_hz, status.current_a) == (10.0, 9.98, 4.1)
    assert not DriveStatus.decode((0, 0b10011, 0, 0, 0)).reverse  # FWD→REV: still forward
    assert DriveStatus.decode((0, 0b01011, 0, 0, 0)).reverse  # REV→FWD: still reverse
    with pytest.raises(CodecError):
        DriveStatus.decode((0, 0))


@pytest.mark.parametrize(
    ("values", "stops"),
    [
        ((3, 0), False),  # factory default: no warning, keep operating, no time-out
        ((0, 5), False),  # warn and keep operating
        ((1, 0), False),  # ramp to stop, but detection disabled
        ((1, 5), True),  # ramp to stop after 0.5 s
        ((2, 10), True),  # coast to stop after 1.0 s
    ],
)
def test_comm_loss_parameters(values: tuple[int, int], stops: bool) -> None:
    comm = CommLoss.decode(values)
    assert comm.stops_the_belt is stops
    assert "Pr.09-02" in comm.describe()
    assert "Pr.09-03" in comm.describe()


@given(st.integers(1, 247), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_writes_round_trip_through_the_drive_side(unit: int, address: int, value: int) -> None:
    frame = codec.write_register(unit, address, value)
    assert codec.crc_ok(frame)
    parsed, used = codec.parse_request(frame)
    assert used == len(frame)
    assert parsed is not None
    assert parsed[0] == unit
    # the drive's echo is the same frame, read as the answer
    assert codec.parse_response(frame, unit) == (Written(address, value), len(frame))


@given(st.binary(max_size=64), st.integers(1, 247))
def test_garbage_never_raises_anything_but_codec_error(data: bytes, unit: int) -> None:
    try:
        response, used = codec.parse_response(data, unit)
    except CodecError:
        return
    assert 0 <= used <= len(data)
    assert response is None or used > 0


def _with_crc(frame: bytes) -> bytes:
    return frame + codec.crc16(frame).to_bytes(2, "little")


@given(st.integers(1, 247), st.binary(min_size=1, max_size=40))
def test_frames_with_a_good_crc_and_any_body_only_raise_codec_error(unit: int, body: bytes) -> None:
    """Random bytes rarely pass the CRC; these do, so pymodbus's decoding of the PDU and ours
    behind it are what gets fuzzed, on the host side and the drive side."""
    frame = _with_crc(bytes([unit]) + body)
    try:
        response, used = codec.parse_response(frame, unit)
    except CodecError:
        pass
    else:
        assert 0 <= used <= len(frame)
        assert response is None or used > 0
    try:
        request, used = codec.parse_request(frame)
    except CodecError:
        return
    assert 0 <= used <= len(frame)
    assert request is None or used > 0


@given(st.lists(st.integers(0, 0xFFFF), max_size=7))
def test_register_decoders_take_any_values_or_raise_codec_error(values: list[int]) -> None:
    try:
        status = codec.DriveStatus.decode(tuple(values))
    except CodecError:
        assert len(values) != codec.STATUS_COUNT
    else:
        assert status.output_hz >= 0
        assert isinstance(status.reverse, bool)
    try:
        comm = codec.CommLoss.decode(tuple(values))
    except CodecError:
        assert len(values) != 2
    else:
        assert isinstance(comm.stops_the_belt, bool)
        assert comm.describe()
