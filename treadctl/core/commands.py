"""Commands to the controller and their results: the same whether from MQTT, the CLI or tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from treadctl.core.device import WalkDirection
from treadctl.core.person import PersonLimits
from treadctl.core.safety import EStopCause


@dataclass(frozen=True, slots=True)
class Start:
    program: str
    parameters: Mapping[str, float] = field(default_factory=dict)
    person: str | None = None  # pseudonymous id (core/person.py)
    limits: PersonLimits | None = None  # the person's, tighter than the device's where given


@dataclass(frozen=True, slots=True)
class ManualSet:
    """A manual session: walk at this speed (starts the belt when idle)."""

    speed_kmh: float
    walk: WalkDirection = WalkDirection.FORWARD
    incline_pct: float = 0.0
    person: str | None = None
    limits: PersonLimits | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    pass


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class Skip:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class EmergencyStop:
    cause: EStopCause = EStopCause.COMMAND
    detail: str = "emergency stop command"


@dataclass(frozen=True, slots=True)
class Reset:
    pass


@dataclass(frozen=True, slots=True)
class HeartRate:
    bpm: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class BrokerState:
    """Reported by the MQTT layer; the supervisor applies safety.broker_loss_s."""

    connected: bool


Command = (
    Start
    | ManualSet
    | Pause
    | Resume
    | Skip
    | Stop
    | EmergencyStop
    | Reset
    | HeartRate
    | Heartbeat
    | BrokerState
)


@dataclass(frozen=True, slots=True)
class Result:
    """A command's answer. `code` is stable (MQTT responses carry it); `message` is for people."""

    ok: bool
    code: str = ""
    message: str = ""

    @staticmethod
    def success(message: str = "") -> Result:
        return Result(ok=True, message=message)

    @staticmethod
    def error(code: str, message: str) -> Result:
        return Result(ok=False, code=code, message=message)
