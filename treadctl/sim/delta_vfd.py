"""A belt on a Delta VFD: a pymodbus RTU server whose registers follow the belt physics.

pymodbus's `ModbusSerialServer` opens a serial port by name, so it sits on an inner pty; the
simulator relays the host's pty to it. That keeps the fault injection (silent, late, garbage,
unplug) and the wire log shared by every personality, while pymodbus answers the frames. Its
`action` hook runs on every access: reads get the status registers computed from the physics at
that instant, writes drive the physics. Pr.09-02/09-03 arm the comm-loss stop (cE10) as on the
drive; the simulated drive comes configured safe (ramp to stop after 0.5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from treadctl.drivers import delta_vfd_codec as codec
from treadctl.drivers.delta_vfd_codec import Access, Drive, FaultTreatment, Rotation
from treadctl.sim.personality import Wire
from treadctl.sim.physics import BeltPhysics, StopCause

log = structlog.get_logger(__name__)

# The simulator's fault codes in 0x2100 (real drives number their faults per series).
FAULT_EXTERNAL = 15  # EF: the safety key wired to the drive's external-fault input
FAULT_COMM = 54  # cE10: communication time-out


class DeltaVfdPersonality:
    name = "delta-vfd"

    def __init__(
        self,
        belt: BeltPhysics,
        *,
        unit_id: int = 1,
        kmh_per_hz: float = 0.2,
        max_hz: float = 60.0,
        comm_treatment: int = FaultTreatment.WARN_RAMP_TO_STOP,
        comm_timeout_s: float = 0.5,
    ) -> None:
        self.belt = belt
        self.unit_id = unit_id
        self.kmh_per_hz = kmh_per_hz
        self.max_hz = max_hz
        self.comm_treatment = comm_treatment
        self.comm_timeout_s = comm_timeout_s
        self.command = codec.STOP
        self.frequency = 0  # 0.01 Hz
        self.fault = 0
        self.reverse = False
        self._reset_since_stop = False  # a reset acknowledged the last stop's fault
        self._wire: Wire | None = None
        self._server: ModbusSerialServer | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._apply_comm_loss()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, wire: Wire) -> None:
        self._wire = wire
        master, slave = os.openpty()
        tty.setraw(slave)  # held open: the master never reads EIO while pymodbus reconnects
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        device = SimDevice(
            self.unit_id,
            simdata=[
                SimData(codec.PR_09_02, count=2, datatype=DataType.REGISTERS),
                SimData(codec.REG_COMMAND, count=3, datatype=DataType.REGISTERS),
                SimData(codec.REG_STATUS, count=codec.STATUS_COUNT, datatype=DataType.REGISTERS),
            ],
            action=self._action,
        )
        self._server = ModbusSerialServer(
            device,
            framer=FramerType.RTU,
            port=os.ttyname(slave),
            baudrate=9600,
            ignore_missing_devices=True,  # a drive stays quiet for frames to other units
        )
        await self._server.serve_forever(background=True)
        asyncio.get_running_loop().add_reader(master, self._from_server)

    async def stop(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._wire = None

    def receive(self, data: bytes, now: float) -> None:
        """Host bytes go to the drive (pymodbus); only valid frames feed its cE10 timer."""
        del now
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, data)

    def _from_server(self) -> None:
        if self._master is None or self._wire is None:
            return
        try:
            data = os.read(self._master, 1024)
        except OSError:
            return
        if data:
            self._wire.answer(data)

    def describe(self) -> str:
        fault = f", fault {self.fault}" if self.fault else ""
        return (
            f"drive {self.frequency / 100:.2f} Hz set{fault}, "
            f"Pr.09-02 = {self.comm_treatment:02d}, Pr.09-03 = {self.comm_timeout_s:.1f} s"
        )

    # --- parameters ----------------------------------------------------------------------------

    def set_comm_loss(self, treatment: int | None = None, timeout_s: float | None = None) -> None:
        """Change Pr.09-02/09-03 as from the keypad."""
        if treatment is not None:
            self.comm_treatment = treatment
        if timeout_s is not None:
            self.comm_timeout_s = round(timeout_s, 1)
        self._apply_comm_loss()

    @property
    def comm_stops(self) -> bool:
        return self.comm_timeout_s > 0 and self.comm_treatment in (
            FaultTreatment.WARN_RAMP_TO_STOP,
            FaultTreatment.WARN_COAST_TO_STOP,
        )

    def _apply_comm_loss(self) -> None:
        self.belt.watchdog_s = self.comm_timeout_s
        self.belt.watchdog_armed = self.belt.running and self.comm_stops

    # --- registers -----------------------------------------------------------------------------

    async def _action(  # noqa: PLR0917 - pymodbus calls it positionally
        self,
        function: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        now = self._wire.clock() if self._wire is not None else 0.0
        self.belt.received(now)  # a valid frame for this drive: the cE10 timer restarts
        if values is None:
            if function != 3:
                return None  # pymodbus reads a written register back for the echo
            self._record(Access(function, address, count), now)
            self._refresh(registers, start, now)
            return None
        words = [int(v) for v in values]
        self._record(Access(function, address, count, tuple(words)), now)
        for offset, word in enumerate(words):
            error = self._write(address + offset, word, now)
            if error is not None:
                return error
        return None

    def _record(self, access: Access, now: float) -> None:
        if self._wire is not None:
            self._wire.record(access, now)

    def _write(self, address: int, word: int, now: float) -> ExcCodes | None:
        match address:
            case codec.REG_COMMAND:
                return self._command(word, now)
            case codec.REG_FREQUENCY:
                if word > round(self.max_hz * 100):
                    return ExcCodes.ILLEGAL_VALUE
                self.frequency = word
                return self._drive_belt(now)
            case codec.REG_CONTROL:
                if word & codec.CONTROL_RESET and self.belt.key_present:
                    self.fault = 0
                    self._reset_since_stop = True
                if word & 0x0001:
                    self._trip(FAULT_EXTERNAL, now)
                return None
        return self._write_parameter(address, word)

    def _write_parameter(self, address: int, word: int) -> ExcCodes | None:
        match address:
            case codec.PR_09_02:
                if word > FaultTreatment.KEEP_RUNNING:
                    return ExcCodes.ILLEGAL_VALUE
                self.set_comm_loss(treatment=word)
                return None
            case codec.PR_09_03:
                if word > 600:
                    return ExcCodes.ILLEGAL_VALUE
                self.set_comm_loss(timeout_s=word / 10)
                return None
        return ExcCodes.ILLEGAL_ADDRESS  # the status registers are read-only

    def _command(self, word: int, now: float) -> ExcCodes | None:
        run = word & 0b11
        direction = (word >> 4) & 0b11
        reverse = {0b01: False, 0b10: True, 0b11: not self.reverse}.get(direction, self.reverse)
        if run == 0b01:
            self.command = word
            self.belt.stop(now)  # at the drive's deceleration time
            return None
        if run not in (0b10, 0b11):
            self.command = word
            return None
        if reverse != self.reverse and not self.belt.still:
            # A real drive would turn the belt round at speed; treadctl must never ask that.
            return ExcCodes.ILLEGAL_VALUE
        if self.fault:
            return None  # a tripped drive ignores run until its fault is reset
        self.command = word
        self.reverse = reverse
        if not self.belt.running:
            if not self.belt.start(now, watchdog=self.comm_stops):
                self._trip(FAULT_EXTERNAL, now)
                return None
            self._reset_since_stop = False
        return self._drive_belt(now)

    def _drive_belt(self, now: float) -> ExcCodes | None:
        if not self.belt.running:
            return None
        kmh = self.frequency / 100 * self.kmh_per_hz
        if not self.belt.set_speed(now, -kmh if self.reverse else kmh):
            return ExcCodes.ILLEGAL_VALUE
        return None

    def _trip(self, fault: int, now: float) -> None:
        self.fault = fault
        if self.belt.running:
            self.belt.stop(
                now, StopCause.SAFETY_KEY if fault == FAULT_EXTERNAL else StopCause.COMMAND
            )

    def _refresh(self, registers: list[int], start: int, now: float) -> None:
        belt = self.belt
        belt.advance(now)
        if not self.fault and not belt.running and not self._reset_since_stop:
            if belt.stop_cause is StopCause.WATCHDOG:
                self.fault = FAULT_COMM
            elif belt.stop_cause is StopCause.SAFETY_KEY:
                self.fault = FAULT_EXTERNAL
        if belt.running:
            drive = Drive.RUNNING
        elif belt.still:
            drive = Drive.STOPPED
        else:
            drive = Drive.DECELERATING
        turning_reverse = belt.speed_kmh < 0 or (belt.still and self.reverse)
        rotation = Rotation.REVERSE if turning_reverse else Rotation.FORWARD
        output = round(abs(belt.speed_kmh) / self.kmh_per_hz * 100)
        base = codec.REG_STATUS - start
        registers[base : base + codec.STATUS_COUNT] = [
            self.fault,
            codec.status_word(drive, rotation),
            self.frequency,
            output,
            round(output / 100 * 0.4 * 10) if belt.running else 0,  # ~0.4 A per Hz, in 0.1 A
        ]
        comm = codec.PR_09_02 - start
        registers[comm : comm + 2] = [self.comm_treatment, round(self.comm_timeout_s * 10)]
        cmd = codec.REG_COMMAND - start
        registers[cmd : cmd + 2] = [self.command, self.frequency]
