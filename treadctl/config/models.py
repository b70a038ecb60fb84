"""The configuration's sections and keys (docs/configuration.md) with their bounds.

Config may tighten the safety defaults and may loosen them only up to the hard ceilings
below, which live in code on purpose: no file or environment variable can exceed them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from treadctl.core.device import whole_steps_at_least

# Hard ceilings (docs/safety.md, hazard table, rules 2-3).
CEILING_SPEED_BACKWARD_KMH = 6.5
CEILING_SPEED_FORWARD_KMH = 16.0
CEILING_INCLINE_PCT = 15.0
CEILING_START_SPEED_KMH = 0.5
CEILING_ACCEL_MPS2 = 0.15
MIN_ACCEL_MPS2 = 0.02  # slower than this a controlled stop takes too long to be a stop
MIN_REVERSAL_STANDSTILL_S = 2.0
MIN_ESTOP_INTERLOCK_S = 3.0
# A pending remote start waits this long at most for the person at the treadmill (docs/safety.md).
MIN_START_CONFIRMATION_S = 10.0
MAX_START_CONFIRMATION_S = 600.0

DriverName = Literal["sim", "trackmaster", "woodway", "csafe", "delta-vfd"]
RetroMode = Literal["reverse-belt", "face-away"]
DEFAULT_BAUD = {"trackmaster": 4800, "woodway": 4800, "csafe": 9600, "delta-vfd": 9600}

# The longest poll interval each driver allows (its capabilities' max_poll_interval_s, repeated
# here so that checking a file does not import the drivers; a test keeps the two equal) and why.
_TRACKMASTER_WHY = "the treadmill's 0.5 s watchdog must be fed by a poll at least every 0.25 s"
MAX_POLL_INTERVAL_S: dict[str, tuple[float, str]] = {
    "sim": (0.25, _TRACKMASTER_WHY),
    "trackmaster": (0.25, _TRACKMASTER_WHY),
    "woodway": (0.25, _TRACKMASTER_WHY),
    "csafe": (0.5, "the console has no watchdog: a lost link shows only as unanswered polls"),
    "delta-vfd": (0.25, "the drive's communication time-out (Pr.09-03, ≥ 0.5 s) must not run out"),
}
MIN_POLL_INTERVAL_S = 0.05  # a Trackmaster poll is ~15 bytes, ~30 ms at 4800 baud

# Each driver's slowest non-zero speed when device.min_speed_kmh is not set (its capabilities'
# speed_min_kmh, repeated like MAX_POLL_INTERVAL_S; a test keeps them equal); None: one wire step.
_TENTH_MPH_KMH = 0.1609344
DEFAULT_MIN_SPEED_KMH: dict[str, float | None] = {
    "sim": 2 * _TENTH_MPH_KMH,  # 0.2 mph, trackmaster-python's lower clamp
    "trackmaster": 2 * _TENTH_MPH_KMH,
    "woodway": 2 * _TENTH_MPH_KMH,
    "csafe": None,
    "delta-vfd": None,
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsafeConfig(Section):
    units: Literal["kmh", "mph"] = "kmh"
    """Speed units of SetSpeed: 0.1 km/h (0x31) or 0.1 mph (0x11); some consoles take only one."""


# C0 state bytes whose meaning is fixed by the Trackmaster manuals: stopped, running (watchdog
# on), running (watchdog off). The state byte is an ASCII digit.
_DOCUMENTED_STATES = ("31", "32", "33")


class TrackmasterConfig(Section):
    belt_states: dict[str, Literal["running", "stopped"]] = {}
    """The meaning of C0 state bytes the manuals do not name, by hex byte, e.g. {"34" =
    "running"}; an unnamed byte is taken as "not running" (a started belt reporting it is
    e-stopped). Only ASCII digits 30-39 other than 31, 32 and 33."""

    @field_validator("belt_states")
    @classmethod
    def _unnamed_digits(
        cls, value: dict[str, Literal["running", "stopped"]]
    ) -> dict[str, Literal["running", "stopped"]]:
        for key in value:
            if not re.fullmatch(r"3[0-9]", key) or key in _DOCUMENTED_STATES:
                raise ValueError(
                    f"{key!r}: give an ASCII digit's byte in hex, 30 to 39, other than 31, 32 "
                    "and 33 (the manuals fix their meaning)"
                )
        return value

    @property
    def running_by_byte(self) -> dict[int, bool]:
        return {int(k, 16): v == "running" for k, v in self.belt_states.items()}


class VfdConfig(Section):
    unit_id: Annotated[int, Field(ge=1, le=247)] = 1
    """The drive's Modbus address (Delta Pr.09-00)."""
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] | None = None
    """Default: 2 with parity N, else 1 (Delta's RTU formats 8N2, 8E1, 8O1: Pr.09-04)."""
    kmh_per_hz: Annotated[float, Field(gt=0, le=2)] | None = None
    """Belt km/h per Hz of output frequency (measure it), or give the three keys below."""
    roller_diameter_mm: Annotated[float, Field(gt=0, le=500)] | None = None
    gear_ratio: Annotated[float, Field(gt=0, le=100)] | None = None
    """Motor revolutions per drive-roller revolution."""
    motor_poles: Literal[2, 4, 6, 8, 10, 12] | None = None
    max_hz: Annotated[float, Field(gt=0, le=400)] = 60.0
    """The highest frequency treadctl commands (at most the drive's Pr.01-00)."""
    accept_no_comm_watchdog: bool = False
    """Run the belt although the drive keeps going on a dead link (Pr.09-02/09-03). Unsafe."""

    @model_validator(mode="after")
    def _one_speed_factor(self) -> Self:
        mechanics = {
            "roller_diameter_mm": self.roller_diameter_mm,
            "gear_ratio": self.gear_ratio,
            "motor_poles": self.motor_poles,
        }
        given = [k for k, v in mechanics.items() if v is not None]
        if self.kmh_per_hz is not None and given:
            raise ValueError(
                "device.vfd: give kmh_per_hz or roller_diameter_mm/gear_ratio/motor_poles, not both"
            )
        if given and len(given) < len(mechanics):
            missing = ", ".join(f"device.vfd.{k}" for k in mechanics if k not in given)
            raise ValueError(f"{missing} missing (needed with {', '.join(given)})")
        return self

    @property
    def effective_kmh_per_hz(self) -> float | None:
        """km/h per Hz: given, or from the mechanics at synchronous speed (slip not included)."""
        if self.kmh_per_hz is not None:
            return self.kmh_per_hz
        if self.roller_diameter_mm and self.gear_ratio and self.motor_poles:
            motor_rpm_per_hz = 120 / self.motor_poles
            roller_km_per_rev = math.pi * self.roller_diameter_mm / 1e6
            return motor_rpm_per_hz / self.gear_ratio * roller_km_per_rev * 60
        return None


class DeviceConfig(Section):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] = "treadmill"
    """Names the device in MQTT topics and Home Assistant; lower-case letters, digits, - and _."""
    driver: DriverName = "sim"
    port: str | None = None
    """Serial device (prefer /dev/serial/by-id/… or a udev symlink). Not used by the sim driver."""
    retro_mode: RetroMode = "reverse-belt"
    baudrate: Annotated[int, Field(gt=0)] | None = None
    """Defaults to the protocol's own rate (4800 trackmaster/woodway, 9600 csafe/delta-vfd)."""
    poll_interval_s: Annotated[float, Field(ge=MIN_POLL_INTERVAL_S)] = 0.1
    """The controller's period: each tick reads the treadmill (feeding its watchdog) and applies
    the safety rules. At most the driver's max_poll_interval_s (checked below)."""
    response_timeout_s: Annotated[float, Field(gt=0, le=2.0)] = 0.25
    min_speed_kmh: Annotated[float, Field(gt=0, le=CEILING_START_SPEED_KMH)] | None = None
    """The treadmill's slowest non-zero speed, rounded up to a whole wire step; ramps jump from 0
    to it and back. Default: 0.2 mph for trackmaster/woodway/sim, one wire step otherwise. At
    most limits.start_speed_kmh (checked below)."""
    csafe: CsafeConfig = CsafeConfig()
    vfd: VfdConfig = VfdConfig()
    trackmaster: TrackmasterConfig = TrackmasterConfig()
    """Driver `trackmaster` and `woodway` (and `sim`, a simulated Woodway)."""

    @field_validator("poll_interval_s")
    @classmethod
    def _poll_keeps_the_driver_fed(cls, value: float, info: ValidationInfo) -> float:
        driver = info.data.get("driver")
        if driver is None:  # the driver is invalid: that error is reported instead
            return value
        most, why = MAX_POLL_INTERVAL_S[driver]
        if value > most:
            raise ValueError(
                f"{value:g} s is too long for driver {driver!r}: at most {most:g} s ({why})"
            )
        return value

    @model_validator(mode="after")
    def _port_needed(self) -> Self:
        if self.driver != "sim" and not self.port:
            raise ValueError(f"device.port is required for driver {self.driver!r}")
        if self.driver == "delta-vfd" and self.vfd.effective_kmh_per_hz is None:
            raise ValueError(
                "device.vfd.kmh_per_hz is required for driver 'delta-vfd' "
                "(or device.vfd.roller_diameter_mm, gear_ratio and motor_poles)"
            )
        return self

    @property
    def effective_baudrate(self) -> int:
        return self.baudrate or DEFAULT_BAUD.get(self.driver, 4800)

    @property
    def speed_step_kmh(self) -> float | None:
        """The driver's wire speed step (its capabilities' speed_resolution_kmh); None for a
        delta-vfd without its km/h-per-Hz factor."""
        match self.driver:
            case "csafe":
                return 0.1 if self.csafe.units == "kmh" else _TENTH_MPH_KMH
            case "delta-vfd":
                factor = self.vfd.effective_kmh_per_hz
                return None if factor is None else 0.01 * factor
        return _TENTH_MPH_KMH

    @property
    def effective_min_speed_kmh(self) -> float | None:
        """The slowest non-zero speed the ramps send (the capabilities' speed_min_kmh)."""
        step = self.speed_step_kmh
        if step is None:
            return None
        wanted = self.min_speed_kmh or DEFAULT_MIN_SPEED_KMH[self.driver] or step
        return whole_steps_at_least(wanted, step)


class LimitsConfig(Section):
    max_speed_backward_kmh: Annotated[float, Field(gt=0, le=CEILING_SPEED_BACKWARD_KMH)] = 3.0
    max_speed_forward_kmh: Annotated[float, Field(gt=0, le=CEILING_SPEED_FORWARD_KMH)] = 6.0
    max_incline_backward_pct: Annotated[float, Field(ge=0, le=CEILING_INCLINE_PCT)] = 10.0
    max_incline_forward_pct: Annotated[float, Field(ge=0, le=CEILING_INCLINE_PCT)] = 15.0
    start_speed_kmh: Annotated[float, Field(gt=0, le=CEILING_START_SPEED_KMH)] = 0.5
    max_accel_mps2: Annotated[float, Field(ge=MIN_ACCEL_MPS2, le=CEILING_ACCEL_MPS2)] = 0.15
    max_session_s: Annotated[float, Field(gt=0, le=4 * 3600)] = 2 * 3600


class SafetyConfig(Section):
    reversal_standstill_s: Annotated[float, Field(ge=MIN_REVERSAL_STANDSTILL_S, le=30)] = 2.0
    reversal_countdown_s: Annotated[float, Field(ge=0, le=30)] = 3.0
    turn_around_s: Annotated[float, Field(ge=MIN_REVERSAL_STANDSTILL_S, le=60)] = 5.0
    """face-away: the still-belt pause in which the person turns round."""
    estop_interlock_s: Annotated[float, Field(ge=MIN_ESTOP_INTERLOCK_S, le=60)] = 3.0
    broker_loss_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    broker_loss_action: Literal["stop", "continue"] = "stop"
    heart_rate_max_bpm: Annotated[int, Field(ge=60, le=220)] | None = None
    heart_rate_lost_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    deadman_s: Annotated[float, Field(ge=0, le=600)] = 0.0
    """Dead-man heartbeat timeout; 0 disables it."""
    speed_mismatch_kmh: Annotated[float, Field(gt=0, le=3)] = 0.8
    speed_mismatch_grace_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    start_confirmation: Literal["auto", "required", "off"] = "auto"
    """Supervised starts: a start takes effect only once confirmed at the treadmill (the GO
    button of an e-stop box with start_button = true). auto: required when such a box is
    configured, off otherwise; required: such a box must be configured."""
    start_confirmation_timeout_s: Annotated[
        float, Field(ge=MIN_START_CONFIRMATION_S, le=MAX_START_CONFIRMATION_S)
    ] = 60.0
    """A start not confirmed within this is dropped."""


class TlsConfig(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    """Do not check the broker's hostname (its certificate is still verified against the CA)."""

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Self:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("mqtt.tls.key_file is set but cert_file is not")
        return self


class MqttConfig(Section):
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    prefix: Annotated[str, Field(pattern=r"^[^#+/][^#+]*$")] = "treadctl"
    username: str | None = None
    password: SecretStr | None = None
    """Prefer password_file (or TREADCTL_MQTT__PASSWORD) to a password in the file."""
    password_file: Path | None = None
    tls: TlsConfig = TlsConfig()
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    discovery: bool = True
    discovery_prefix: Annotated[str, Field(pattern=r"^[^#+/][^#+]*$")] = "homeassistant"
    heart_rate_topic: Annotated[str, Field(pattern=r"^[^#+]+$")] | None = None
    """Where heart rate comes in; default `{prefix}/{device.id}/input/heart_rate`."""
    heart_rate_field: Annotated[str, Field(min_length=1)] = "bpm"
    """The JSON field holding beats per minute (a bare number is accepted too)."""
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0


class TelemetryConfig(Section):
    rate_hz: Annotated[float, Field(gt=0, le=50)] = 5.0


class ProgramsConfig(Section):
    directory: Path | None = None


class StorageConfig(Section):
    path: Path | None = None
    """Session database; defaults to $STATE_DIRECTORY/sessions.db or ~/.local/state/treadctl/."""


class ClinicConfig(Section):
    """The clinic service (`treadctl clinic`, docs/clinic.md); the daemon does not read it."""

    database: Annotated[str, Field(min_length=1)] | None = None
    """A database URL: sqlite:///path/clinic.db (default $STATE_DIRECTORY/clinic.db or
    ~/.local/state/treadctl/clinic.db) or postgresql://user@host/db."""
    host: str = "127.0.0.1"
    """Where the web API listens; put a TLS proxy in front for the LAN (docs/clinic.md)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8470
    """0: a free port, which the service logs when it is ready."""
    tls_certfile: Path | None = None
    """PEM certificate (chain): the service answers HTTPS only (docs/dashboard.md, TLS)."""
    tls_keyfile: Path | None = None
    """Its PEM private key, readable by the service only."""

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("clinic.tls_certfile and clinic.tls_keyfile go together")
        return self


HEARTBEAT_ONLY = ("baudrate", "start_button")
MODEM_LINES_ONLY = ("output", "input", "poll_interval_s", "pulse_test_s")


class EStopInputConfig(Section):
    """A dedicated e-stop input on its own serial port (docs/estop.md)."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    """Names the input in `state`, events and Home Assistant; a-z, 0-9 and _."""
    kind: Literal["heartbeat", "modem-lines"]
    port: Annotated[str, Field(min_length=1)]
    """Prefer /dev/serial/by-id/…; modem-lines also takes pyserial URLs such as loop://."""
    healthy_after: Annotated[int, Field(ge=2, le=100)] = 3
    """Good heartbeats (or closed-loop samples) in a row before the input counts as healthy."""
    reconnect_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    timeout_s: Annotated[float, Field(ge=0.25, le=2.0)] = 0.5
    """Silence longer than this is an e-stop: no valid line from a heartbeat box (it sends one at
    least every 0.2 s), no completed read of a modem input line (read every poll_interval_s,
    at most 0.05 s, so the lower bound leaves five reads of margin)."""
    # heartbeat
    baudrate: Annotated[int, Field(gt=0)] = 115200
    start_button: bool = False
    """The box has a second button whose GO lines confirm remote starts
    (safety.start_confirmation)."""
    # modem-lines
    output: Literal["rts", "dtr"] = "rts"
    input: Literal["cts", "dsr", "dcd"] = "cts"
    poll_interval_s: Annotated[float, Field(ge=0.002, le=0.05)] = 0.01
    pulse_test_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    """Drop the output this often to check the input follows it (a short or miswire); 0: never."""

    @model_validator(mode="after")
    def _keys_of_the_kind(self) -> Self:
        foreign = MODEM_LINES_ONLY if self.kind == "heartbeat" else HEARTBEAT_ONLY
        given = [k for k in foreign if k in self.model_fields_set]
        if given:
            raise ValueError(f"{', '.join(given)}: not used by kind {self.kind!r}")
        return self


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]


class Settings(BaseSettings):
    """The whole configuration. Environment: TREADCTL_SECTION__KEY, e.g. TREADCTL_MQTT__HOST."""

    model_config = SettingsConfigDict(
        env_prefix="TREADCTL_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    log_level: LogLevel = "INFO"
    device: DeviceConfig = DeviceConfig()
    limits: LimitsConfig = LimitsConfig()
    safety: SafetyConfig = SafetyConfig()
    mqtt: MqttConfig = MqttConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    programs: ProgramsConfig = ProgramsConfig()
    storage: StorageConfig = StorageConfig()
    estop_inputs: tuple[EStopInputConfig, ...] = ()
    clinic: ClinicConfig = ClinicConfig()

    @model_validator(mode="after")
    def _min_speed_within_the_start_speed(self) -> Self:
        """A belt starts at the treadmill's minimum speed: a start speed below it contradicts."""
        low, start = self.device.effective_min_speed_kmh, self.limits.start_speed_kmh
        if low is not None and low > start + 1e-9:
            whose = (
                f"device.min_speed_kmh = {self.device.min_speed_kmh:g}"
                if self.device.min_speed_kmh is not None
                else f"the {self.device.driver} driver's default"
            )
            raise ValueError(
                f"device.min_speed_kmh: the slowest speed sent, {low:.3f} km/h ({whose}, in whole "
                f"wire steps), is above limits.start_speed_kmh = {start:g}: lower one or raise the "
                f"other (at most {CEILING_START_SPEED_KMH:g})"
            )
        return self

    @property
    def start_buttons(self) -> tuple[str, ...]:
        """The e-stop inputs whose GO button confirms a start."""
        return tuple(i.name for i in self.estop_inputs if i.start_button)

    @model_validator(mode="after")
    def _start_confirmation_possible(self) -> Self:
        if self.safety.start_confirmation == "required" and not self.start_buttons:
            raise ValueError(
                "safety.start_confirmation = 'required' but nothing at the treadmill can confirm "
                "a start: add an [[estop_inputs]] entry of kind 'heartbeat' with start_button = "
                "true (no supported treadmill protocol reports its own start key), or use 'auto'"
            )
        return self

    @model_validator(mode="after")
    def _estop_inputs_apart(self) -> Self:
        names: set[str] = set()
        ports = {self.device.port} if self.device.port else set()
        for i, entry in enumerate(self.estop_inputs):
            if entry.name in names:
                raise ValueError(f"estop_inputs.{i}.name: {entry.name!r} is used twice")
            if entry.port in ports and entry.port != "loop://":
                raise ValueError(
                    f"estop_inputs.{i}.port: {entry.port!r} is already used (device.port or "
                    "another input): an e-stop input needs a port of its own"
                )
            names.add(entry.name)
            ports.add(entry.port)
        return self
