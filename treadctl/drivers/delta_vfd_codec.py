"""Delta VFD over Modbus RTU: registers, words and frames (pymodbus builds and parses the frames).

Facts: docs/protocols.md, "Delta VFD". Command word 0x2000 (FC06): bits 1-0 `01` stop, `10` run;
bits 5-4 `01` forward, `10` reverse. 0x2001: frequency command in 0.01 Hz. 0x2100-0x2104: fault
code, status word, frequency command, output frequency (0.01 Hz), output current (0.1 A).
Drive parameters sit at 0xGGnn for Pr.GG-nn (Delta's convention, e.g. Pr.05-00 at 0x0500 in the
VFD-VE manual's FC10 example), so Pr.09-02/09-03 are 0x0902/0x0903.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from treadctl.drivers.errors import CodecError

REG_COMMAND = 0x2000
REG_FREQUENCY = 0x2001  # 0.01 Hz
REG_CONTROL = 0x2002  # bit 0 external fault, bit 1 reset, bit 2 base block
REG_STATUS = 0x2100  # 0x2100..0x2104
STATUS_COUNT = 5
PR_09_02 = 0x0902  # transmission fault treatment
PR_09_03 = 0x0903  # time-out detection, 0.1 s, 0 = disabled

RUN_FORWARD = 0x0012
RUN_REVERSE = 0x0022
STOP = 0x0001
CONTROL_RESET = 0x0002


class FaultTreatment(enum.IntEnum):
    """Pr.09-02: what the drive does when the time-out of Pr.09-03 expires."""

    WARN_KEEP_RUNNING = 0
    WARN_RAMP_TO_STOP = 1
    WARN_COAST_TO_STOP = 2
    KEEP_RUNNING = 3  # factory default


class Drive(enum.IntEnum):
    """Status word 0x2101 bits 1-0."""

    STOPPED = 0b00
    DECELERATING = 0b01
    STANDBY = 0b10
    RUNNING = 0b11


class Rotation(enum.IntEnum):
    """Status word 0x2101 bits 4-3 (the same coding as 0x2119 bits 4-3 of the VFD-ED)."""

    FORWARD = 0b00
    REVERSE_TO_FORWARD = 0b01
    FORWARD_TO_REVERSE = 0b10
    REVERSE = 0b11


# --- CRC (our own, to cross-check pymodbus's framer) -------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS as a number; on the wire it goes low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]).to_bytes(2, "little") == frame[-2:]


# --- frames -------------------------------------------------------------------------------------

_CLIENT = FramerRTU(DecodePDU(is_server=False))
_SERVER = FramerRTU(DecodePDU(is_server=True))


def write_register(unit: int, address: int, value: int) -> bytes:
    """FC06; the drive echoes the frame."""
    _check(unit, address, value)
    return _CLIENT.buildFrame(
        WriteSingleRegisterRequest(address=address, registers=[value], dev_id=unit)
    )


def read_registers(unit: int, address: int, count: int) -> bytes:
    """FC03."""
    _check(unit, address, count)
    return _CLIENT.buildFrame(
        ReadHoldingRegistersRequest(address=address, count=count, dev_id=unit)
    )


def _check(unit: int, address: int, value: int) -> None:
    if not 1 <= unit <= 247:
        raise CodecError(f"unit id {unit} is outside 1-247")
    if not 0 <= address <= 0xFFFF or not 0 <= value <= 0xFFFF:
        raise CodecError(f"address {address} or value {value} does not fit in 16 bits")


@dataclass(frozen=True, slots=True)
class Written:
    address: int
    value: int


@dataclass(frozen=True, slots=True)
class Registers:
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    function: int
    code: int


Response = Written | Registers | Refused

EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value (or parameters locked)",
    4: "slave device failure (or parameter cannot change while running)",
    6: "slave device busy",
}


def parse_response(buf: bytes, unit: int) -> tuple[Response | None, int]:
    """The drive's answer at the start of `buf`: (response, bytes used) or (None, 0) for more.

    Raises CodecError for a frame with a bad CRC, from another unit, or that does not decode.
    """
    frame, used = _split(_CLIENT, buf)
    if frame is None:
        return None, used
    dev_id, pdu = frame
    if dev_id != unit:
        raise CodecError(f"answer from unit {dev_id}, expected {unit}")
    match pdu:
        case ExceptionResponse():
            return Refused(pdu.function_code & 0x7F, pdu.exception_code), used
        case WriteSingleRegisterResponse():
            return Written(pdu.address, pdu.registers[0]), used
        case ReadHoldingRegistersResponse():
            return Registers(tuple(pdu.registers)), used
    raise CodecError(f"unexpected answer {pdu}")


def _split(framer: FramerRTU, buf: bytes) -> tuple[tuple[int, ModbusPDU] | None, int]:
    if len(buf) < FramerRTU.MIN_SIZE:
        return None, 0
    try:
        used, dev_id, _, pdu_bytes = framer.decode(buf)
    except (ModbusException, IndexError, ValueError, struct.error) as exc:
        raise CodecError(f"cannot frame {buf.hex(' ')}: {exc}") from None
    if not used:
        return None, 0
    if not pdu_bytes:
        raise CodecError(f"bad CRC or unknown function in {buf.hex(' ')}")
    try:
        pdu = framer.decoder.decode(pdu_bytes)
    except (ModbusException, IndexError, ValueError, struct.error) as exc:
        raise CodecError(f"cannot decode {buf.hex(' ')}: {exc}") from None
    if pdu is None:
        raise CodecError(f"cannot decode {buf.hex(' ')}")
    pdu.dev_id = dev_id
    return (dev_id, pdu), used


@dataclass(frozen=True, slots=True)
class Access:
    """One register access as the drive saw it (the simulator's wire log)."""

    function: int
    address: int
    count: int
    values: tuple[int, ...] | None = None  # written values; None for a read


def parse_request(buf: bytes) -> tuple[tuple[int, ModbusPDU] | None, int]:
    """A host request at the start of `buf` (drive side, for tests and tools)."""
    return _split(_SERVER, buf)


# --- words --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriveStatus:
    """Registers 0x2100-0x2104."""

    fault: int
    drive: Drive
    rotation: Rotation
    frequency_cmd_hz: float
    output_hz: float
    current_a: float

    @classmethod
    def decode(cls, values: tuple[int, ...]) -> DriveStatus:
        if len(values) != STATUS_COUNT:
            raise CodecError(f"status needs {STATUS_COUNT} registers, got {len(values)}")
        fault, word, cmd, out, amps = values
        return cls(
            fault=fault,
            drive=Drive(word & 0b11),
            rotation=Rotation((word >> 3) & 0b11),
            frequency_cmd_hz=cmd / 100,
            output_hz=out / 100,
            current_a=amps / 10,
        )

    @property
    def reverse(self) -> bool:
        # While changing direction the motor still turns the old way until it passes zero.
        return self.rotation in (Rotation.REVERSE, Rotation.REVERSE_TO_FORWARD)


def status_word(drive: Drive, rotation: Rotation) -> int:
    return int(drive) | (int(rotation) << 3)


@dataclass(frozen=True, slots=True)
class CommLoss:
    """Pr.09-02 and Pr.09-03 as read from the drive."""

    treatment: int
    timeout_s: float

    @classmethod
    def decode(cls, values: tuple[int, ...]) -> CommLoss:
        if len(values) != 2:
            raise CodecError(f"Pr.09-02/09-03 need 2 registers, got {len(values)}")
        return cls(values[0], values[1] / 10)

    @property
    def stops_the_belt(self) -> bool:
        """The drive stops by itself when the line goes quiet (cE10)."""
        return self.timeout_s > 0 and self.treatment in (
            FaultTreatment.WARN_RAMP_TO_STOP,
            FaultTreatment.WARN_COAST_TO_STOP,
        )

    def describe(self) -> str:
        name = (
            FaultTreatment(self.treatment).name.lower().replace("_", " ")
            if self.treatment in FaultTreatment._value2member_map_
            else "unknown"
        )
        timeout = "disabled" if self.timeout_s == 0 else f"{self.timeout_s:.1f} s"
        return f"Pr.09-02 = {self.treatment:02d} ({name}), Pr.09-03 = {timeout}"
