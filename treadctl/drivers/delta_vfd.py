"""A belt on a Delta variable-frequency drive, over Modbus RTU (RS-485): the session.

Belt speed is output frequency × `kmh_per_hz`; the direction bits of the command word reverse the
belt. The drive's only watchdog is its communication time-out (Pr.09-02/09-03), off by factory
default: the driver reads both at connect and refuses to run the belt while the drive would keep
going on a dead link, unless the configuration accepts that risk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import ClassVar, Literal, Unpack

import structlog

from treadctl.core.device import BeltDirection, Capabilities, DeviceStatus, with_min_speed
from treadctl.drivers import delta_vfd_codec as codec
from treadctl.drivers.base import Driver
from treadctl.drivers.delta_vfd_codec import (
    CommLoss,
    Drive,
    DriveStatus,
    Refused,
    Registers,
    Response,
    Written,
)
from treadctl.drivers.errors import CodecError, Rejected
from treadctl.drivers.session import Parser, Session, SessionOptions
from treadctl.transport.serial import SerialSettings

log = structlog.get_logger(__name__)

Parity = Literal["N", "E", "O"]
MAX_COMM_TIMEOUT_S = 2.0  # a longer Pr.09-03 lets the belt run blind for too long
MAX_POLL_INTERVAL_S = 0.25
# How long a direction flip waits for the drive to report 0 Hz after frequency 0: the
# supervisor has already held the belt still, so this is a check, not a ramp.
FLIP_WAIT_S = 1.0
FLIP_POLL_S = 0.05  # status reads meanwhile also feed the drive's comm time-out
ACCEPT_KEY = "device.vfd.accept_no_comm_watchdog"


def capabilities(
    kmh_per_hz: float, max_hz: float, min_speed_kmh: float | None = None
) -> Capabilities:
    step = 0.01 * kmh_per_hz
    caps = Capabilities(
        speed_max_kmh=max_hz * kmh_per_hz,
        speed_resolution_kmh=step,
        speed_min_kmh=step,  # the drive's own minimum (Pr.01-05) is not read: device.min_speed_kmh
        incline_min_pct=0.0,
        incline_max_pct=0.0,  # a bare belt on a drive: no incline motor
        incline_step_pct=0.1,
        reverse=True,
        reports_actual_speed=True,  # output frequency: motor slip and a slipping belt unseen
        reports_safety_stop=True,  # the drive stops on its own (fault, external stop)
        watchdog_s=None,  # known after connect: Pr.09-03 when Pr.09-02 stops the belt
        max_poll_interval_s=MAX_POLL_INTERVAL_S,
    )
    return with_min_speed(caps, min_speed_kmh)


class DeltaVfdDriver(Driver):
    name: ClassVar[str] = "delta-vfd"

    def __init__(
        self,
        port: str,
        *,
        kmh_per_hz: float,
        max_hz: float = 60.0,
        unit_id: int = 1,
        baudrate: int = 9600,
        parity: Parity = "N",
        stopbits: int | None = None,
        accept_no_comm_watchdog: bool = False,
        poll_interval_s: float = 0.1,
        min_speed_kmh: float | None = None,
        **session: Unpack[SessionOptions],
    ) -> None:
        # The period the owner reads the drive at (device.poll_interval_s): checked here, and
        # against the drive's own time-out (Pr.09-03) at connect.
        if not 0 < poll_interval_s <= MAX_POLL_INTERVAL_S:
            raise ValueError(f"poll interval {poll_interval_s} s must be within (0, 0.25] s")
        if kmh_per_hz <= 0 or max_hz <= 0:
            raise ValueError("kmh_per_hz and max_hz must be positive")
        self.port = port
        self.unit_id = unit_id
        self.kmh_per_hz = kmh_per_hz
        self.max_hz = max_hz
        self.accept_no_comm_watchdog = accept_no_comm_watchdog
        self.poll_interval_s = poll_interval_s
        self.capabilities = capabilities(kmh_per_hz, max_hz, min_speed_kmh)
        # Delta's RTU formats are 8N2, 8E1 and 8O1 (Pr.09-04).
        stop = stopbits if stopbits is not None else (2 if parity == "N" else 1)
        self._session = Session(
            self.name,
            SerialSettings(port, baudrate, parity=parity, stopbits=stop),
            halted=lambda: self.halted,
            **session,
        )
        self._stop = codec.write_register(unit_id, codec.REG_COMMAND, codec.STOP)
        self._started = False
        self._reverse = False  # direction of the last run command
        self._freq = 0  # last frequency command, 0.01 Hz
        self.comm_loss: CommLoss | None = None
        self.refusal: str | None = None  # why the belt may not run on this drive
        self.last_status: DeviceStatus | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        await self._session.open(self._stop_and_check)
        log.info("drive connected, belt stopped", driver=self.name, port=self.port)

    async def _stop_and_check(self) -> None:
        async with self._session.turn():
            await self._write(codec.REG_COMMAND, codec.STOP)
            await self._write(codec.REG_FREQUENCY, 0)
            self._freq = 0
            await self._check_comm_loss()

    async def _check_comm_loss(self) -> None:
        self.comm_loss = None
        try:
            self.comm_loss = CommLoss.decode(await self._read(codec.PR_09_02, 2))
            verdict = self._judge(self.comm_loss)
        except Rejected as exc:
            verdict = f"Pr.09-02/09-03 could not be read ({exc})"
        if verdict is None and self.comm_loss is not None:
            self.refusal = None
            self.capabilities = dataclasses.replace(
                self.capabilities, watchdog_s=self.comm_loss.timeout_s
            )
            log.info("drive stops on a dead link", driver=self.name, **self._comm_fields())
            if self.comm_loss.timeout_s <= self.poll_interval_s:
                log.warning(
                    "Pr.09-03 is not longer than device.poll_interval_s: expect cE10 trips",
                    driver=self.name,
                    poll_interval_s=self.poll_interval_s,
                )
            return
        self.capabilities = dataclasses.replace(self.capabilities, watchdog_s=None)
        verdict = verdict or "Pr.09-02/09-03 unknown"
        if self.accept_no_comm_watchdog:
            self.refusal = None
            log.warning(
                "the drive would keep the belt running on a dead link; risk accepted",
                driver=self.name,
                problem=verdict,
                key=ACCEPT_KEY,
            )
            return
        self.refusal = (
            f"{self.name}: refusing to run the belt: {verdict}. On the drive set Pr.09-02 = 01 "
            f"(warn and ramp to stop) and Pr.09-03 to 0.5-{MAX_COMM_TIMEOUT_S:.1f} s, "
            f"or accept the risk with {ACCEPT_KEY} = true"
        )
        log.error("unsafe drive configuration", driver=self.name, refusal=self.refusal)

    @staticmethod
    def _judge(comm: CommLoss) -> str | None:
        if not comm.stops_the_belt:
            return f"the drive keeps running when the line goes quiet ({comm.describe()})"
        if comm.timeout_s > MAX_COMM_TIMEOUT_S:
            return (
                f"the drive runs {comm.timeout_s:.1f} s blind before it stops ({comm.describe()}),"
                f" more than {MAX_COMM_TIMEOUT_S:.1f} s"
            )
        return None

    def _comm_fields(self) -> dict[str, object]:
        c = self.comm_loss
        return {} if c is None else {"pr_09_02": c.treatment, "pr_09_03_s": c.timeout_s}

    async def close(self) -> None:
        await self._session.close()

    # --- commands ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.refusal is not None:
            raise Rejected(self.refusal, code="unsafe_device")
        async with self._session.turn(moves=True):
            status = await self._read_status()
            if status.fault:
                # The command word says stop, so clearing the fault cannot start the belt.
                log.info("resetting drive fault", driver=self.name, fault=status.fault)
                await self._write(codec.REG_CONTROL, codec.CONTROL_RESET)
            await self._write(codec.REG_FREQUENCY, 0)
            self._freq = 0
            await self._write(codec.REG_COMMAND, codec.RUN_FORWARD, moves=True)
            self._reverse = False
            self._mark_started()

    async def stop(self) -> None:
        """The drive ramps the belt down at its own deceleration time (Pr.01-10)."""
        self._started = False
        async with self._session.turn():
            await self._write(codec.REG_COMMAND, codec.STOP)
            await self._write(codec.REG_FREQUENCY, 0)
            self._freq = 0

    def stop_now(self) -> None:
        self._started = False
        self.halted = True
        self._session.write_now(self._stop)  # ahead of the lock: nothing delays the stop
        log.info("emergency stop sent", driver=self.name)

    async def emergency_stop(self) -> None:
        self.stop_now()
        await self.stop()  # then confirmed in turn

    async def set_speed(self, speed_kmh: float, belt: BeltDirection) -> float:
        if not 0 <= speed_kmh <= self.capabilities.speed_max_kmh + 1e-9:
            raise Rejected(
                f"{speed_kmh:.2f} km/h is outside 0-{self.capabilities.speed_max_kmh:.2f} km/h "
                f"({self.max_hz:g} Hz × {self.kmh_per_hz:g} km/h per Hz)",
                code="out_of_range",
            )
        hundredths = min(
            math.floor(speed_kmh / self.kmh_per_hz * 100 + 1e-6), round(self.max_hz * 100)
        )
        reverse = belt is BeltDirection.REVERSE
        async with self._session.turn(moves=hundredths > 0):
            if self._started and reverse != self._reverse:
                await self._flip(reverse)
            await self._write(codec.REG_FREQUENCY, hundredths, moves=hundredths > 0)
            self._freq = hundredths
        return hundredths / 100 * self.kmh_per_hz

    async def set_incline(self, incline_pct: float) -> float:
        if abs(incline_pct) > 1e-9:
            raise Rejected(f"{self.name}: the belt has no incline", code="unsupported")
        return 0.0

    async def read_status(self) -> DeviceStatus:
        async with self._session.turn():
            status = await self._read_status()
        running = status.drive is Drive.RUNNING
        if status.fault and self._started:
            log.warning("drive reports a fault", driver=self.name, fault=status.fault)
        comm = self.comm_loss
        result = DeviceStatus(
            running=running,
            belt=BeltDirection.REVERSE if status.reverse else BeltDirection.FORWARD,
            speed_kmh=status.output_hz * self.kmh_per_hz,
            incline_pct=0.0,
            watchdog_armed=running and comm is not None and comm.stops_the_belt,
            safety_stop=self._started and not running,
        )
        self.last_status = result
        return result

    # --- session -------------------------------------------------------------------------------

    async def _flip(self, reverse: bool) -> None:
        """Turn the direction bits round, only once the drive itself reports 0 Hz: never with
        a frequency set (the drive would turn the belt round at speed on its own), and not on
        the supervisor's belief alone. Within the caller's turn."""
        self._session.check_halted()
        if self._freq:
            await self._write(codec.REG_FREQUENCY, 0)
            self._freq = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLIP_WAIT_S
        while (output_hz := (await self._read_status()).output_hz) > 0:
            if loop.time() >= deadline:
                raise Rejected(
                    f"{self.name}: the drive still turns at {output_hz:.2f} Hz {FLIP_WAIT_S} s "
                    "after frequency 0; the direction is not changed",
                    code="not_stopped",
                )
            await asyncio.sleep(FLIP_POLL_S)
        run = codec.RUN_REVERSE if reverse else codec.RUN_FORWARD
        await self._write(codec.REG_COMMAND, run, moves=True)
        self._reverse = reverse

    async def _read_status(self) -> DriveStatus:
        return DriveStatus.decode(await self._read(codec.REG_STATUS, codec.STATUS_COUNT))

    async def _write(self, address: int, value: int, *, moves: bool = False) -> None:
        """FC06, within the caller's turn; `moves`: refused while halted, before every try."""
        request = codec.write_register(self.unit_id, address, value)
        response: Response = await self._session.exchange(
            request, self._parser(Written(address, value)), moves=moves
        )
        self._refused(response, f"write {address:04X}h = {value}")

    async def _read(self, address: int, count: int) -> tuple[int, ...]:
        request = codec.read_registers(self.unit_id, address, count)
        response: Response = await self._session.exchange(request, self._parser(count))
        self._refused(response, f"read {count} registers at {address:04X}h")
        if not isinstance(response, Registers):  # the parser lets nothing else through
            raise CodecError(f"{response} does not answer a read")
        return response.values

    def _refused(self, response: Response, what: str) -> None:
        if isinstance(response, Refused):
            text = codec.EXCEPTIONS.get(response.code, "unknown exception")
            raise Rejected(
                f"{self.name} refused {what}: {text} (CE{response.code:02d})",
                code="refused",
            )

    def _parser(self, expect: Written | int) -> Parser[Response]:
        """Answers to a write are echoes, to a read `expect` registers; the echo of a stop
        written on the e-stop path may come first and is skipped."""
        stop_echo = Written(codec.REG_COMMAND, codec.STOP)

        def parse(buf: bytes) -> tuple[Response | None, int]:
            response, used = codec.parse_response(buf, self.unit_id)
            if response is None or isinstance(response, Refused):
                return response, used
            if response == expect or (
                isinstance(response, Registers) and len(response.values) == expect
            ):
                return response, used
            if response == stop_echo:
                return None, used
            raise CodecError(f"{response} does not answer the request (expected {expect})")

        return parse
