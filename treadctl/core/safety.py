"""The safety supervisor: every rule of docs/safety.md that software can enforce, as pure logic.

It sees every reading of the treadmill and every speed the controller wants, and decides what
may reach the belt. It never does I/O: the controller carries out its decisions. Time comes in
as arguments (monotonic seconds), so every rule is testable on a fake clock.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from treadctl.core import units
from treadctl.core.device import BeltDirection, DeviceStatus, WalkDirection

STILL_KMH = 0.01  # measured speeds below this are a still belt
HR_LOST_SLOW_KMH = 2.0  # h/p/cosmos pattern: slow to 2 km/h ...
HR_LOST_STOP_S = 60.0  # ... and stop after 60 s without a heart-rate signal


class EStopCause(enum.StrEnum):
    COMMAND = "command"  # MQTT cmd/estop, the CLI
    TREADMILL = "treadmill_stop"  # the treadmill's stop button, safety key or own watchdog
    SPEED_MISMATCH = "speed_mismatch"
    LINK_LOST = "link_lost"
    HEART_RATE = "heart_rate"
    DEADMAN = "deadman"
    FAILURE = "failure"  # treadctl's own unexpected failure
    INPUT = "estop_input"  # a dedicated e-stop input (issue 10)


class StopReason(enum.StrEnum):
    COMMAND = "stopped"
    FINISHED = "finished"
    BROKER_LOST = "broker_lost"
    HEART_RATE_LOST = "heart_rate_lost"
    MAX_DURATION = "max_duration"


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """The numbers the supervisor enforces (from config, within the ceilings in config/models)."""

    max_speed_forward_kmh: float = 6.0
    max_speed_backward_kmh: float = 3.0
    max_incline_forward_pct: float = 15.0
    max_incline_backward_pct: float = 10.0
    start_speed_kmh: float = 0.5
    max_accel_mps2: float = 0.15
    speed_resolution_kmh: float = 0.0  # the driver's wire step; ramps move whole steps
    # The treadmill's slowest non-zero speed (its capabilities' speed_min_kmh, whole wire steps):
    # nothing between 0 and it is sent. 0: no minimum beyond one step.
    speed_min_kmh: float = 0.0
    reversal_standstill_s: float = 2.0
    reversal_countdown_s: float = 3.0
    estop_interlock_s: float = 3.0
    broker_loss_s: float = 10.0
    broker_loss_continue: bool = False
    heart_rate_max_bpm: int | None = None
    heart_rate_lost_s: float = 5.0
    hr_lost_stop_s: float = HR_LOST_STOP_S
    deadman_s: float = 0.0
    speed_mismatch_kmh: float = 0.8
    speed_mismatch_grace_s: float = 3.0
    max_session_s: float = 7200.0

    def __post_init__(self) -> None:
        # The first command of a start is the minimum: it must not exceed the start speed.
        if self.speed_min_kmh > self.start_speed_kmh + 1e-9:
            raise ValueError(
                f"minimum speed {self.speed_min_kmh:.3f} km/h is above the start speed "
                f"{self.start_speed_kmh:g} km/h"
            )

    @property
    def accel_kmh_s(self) -> float:
        return units.accel_kmh_per_s(self.max_accel_mps2)

    def speed_cap(self, walk: WalkDirection) -> float:
        if walk is WalkDirection.BACKWARD:
            return self.max_speed_backward_kmh
        return self.max_speed_forward_kmh

    def incline_cap(self, walk: WalkDirection) -> float:
        if walk is WalkDirection.BACKWARD:
            return self.max_incline_backward_pct
        return self.max_incline_forward_pct


@dataclass(frozen=True, slots=True)
class EStop:
    cause: EStopCause
    detail: str


@dataclass(frozen=True, slots=True)
class ControlledStop:
    reason: StopReason
    detail: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something people should know that does not stop the belt (an event)."""

    type: str
    detail: str


Action = EStop | ControlledStop | Notice


@dataclass(frozen=True, slots=True)
class SpeedCommand:
    speed_kmh: float
    belt: BeltDirection


@dataclass
class SafetySupervisor:
    rules: SafetyRules
    # e-stop latch
    latched: EStop | None = None
    interlock_until: float = 0.0
    # the belt as last commanded and as last measured
    commanded: SpeedCommand = field(
        default_factory=lambda: SpeedCommand(0.0, BeltDirection.FORWARD)
    )
    last_change_at: float = -math.inf
    measured_kmh: float = 0.0
    measured_belt: BeltDirection = BeltDirection.FORWARD
    still_since: float | None = None
    countdown_started: float | None = None
    reversal_deferred: bool = False
    # session-time rules
    session_started: float | None = None
    heart_rate_bpm: int | None = None
    heart_rate_at: float | None = None
    heartbeat_at: float | None = None
    broker_down_since: float | None = None
    mismatch_since: float | None = None
    hr_slowed: bool = False
    inputs_unhealthy: dict[str, str] = field(default_factory=dict)  # e-stop input -> why
    _notified: set[str] = field(default_factory=set)
    _ramp_kmh: float = 0.0  # the continuous ramp the wire commands follow
    _last_eval: float | None = None

    # --- power-up, e-stop latch, reset, interlock ------------------------------------------------

    def power_up(self, now: float) -> None:
        """Rule 7: after power-up, starts are refused for the interlock time."""
        self.interlock_until = now + self.rules.estop_interlock_s

    def latch(self, cause: EStopCause, detail: str, now: float) -> EStop:
        if self.latched is None:
            self.latched = EStop(cause, detail)
        self.interlock_until = max(self.interlock_until, now + self.rules.estop_interlock_s)
        self.commanded = SpeedCommand(0.0, self.commanded.belt)
        self._ramp_kmh = 0.0
        self.last_change_at = now
        self.session_started = None
        return self.latched

    def belt_still(self) -> bool:
        return self.measured_kmh < STILL_KMH

    def input_health(self, name: str, problem: str | None) -> None:
        """A dedicated e-stop input's health: None when healthy, else why not. Its trips latch
        through `latch()` like every other source; this only gates `reset` and starts."""
        if problem is None:
            self.inputs_unhealthy.pop(name, None)
        else:
            self.inputs_unhealthy[name] = problem

    def input_refusal(self) -> tuple[str, str] | None:
        if not self.inputs_unhealthy:
            return None
        name = min(self.inputs_unhealthy)
        why = self.inputs_unhealthy[name]
        return "estop_input", f"e-stop input {name} is not healthy ({why}): release or reconnect it"

    def reset_refusal(self, now: float) -> tuple[str, str] | None:  # noqa: ARG002 - same shape as start_refusal
        """Why `reset` is refused now, as (code, message); None when it may proceed."""
        if (refusal := self.input_refusal()) is not None:
            return refusal
        if not self.belt_still():
            return (
                "belt_moving",
                f"the belt still moves ({self.measured_kmh:.2f} km/h): reset when it is still",
            )
        return None

    def reset(self, now: float) -> None:
        self.latched = None
        self.interlock_until = max(self.interlock_until, now + self.rules.estop_interlock_s)
        self.mismatch_since = None

    def start_refusal(
        self, now: float, *, heart_rate_limit: bool = False
    ) -> tuple[str, str] | None:
        """`heart_rate_limit`: the session brings a heart-rate maximum of its own (a person's)."""
        if (refusal := self.input_refusal()) is not None:
            return refusal
        if self.latched is not None:
            return (
                "estop_latched",
                f"emergency stop latched ({self.latched.cause}): send reset first",
            )
        if now < self.interlock_until:
            message = (
                f"starts are refused for {self.rules.estop_interlock_s:g} s after an emergency "
                f"stop or power-up ({self.interlock_until - now:.1f} s left)"
            )
            return "interlock_active", message
        if not self.belt_still():
            return "belt_moving", "the belt is still moving"
        limited = heart_rate_limit or self.rules.heart_rate_max_bpm is not None
        if limited and not self._hr_fresh(now):
            return "no_heart_rate", "a heart-rate limit is set but there is no heart-rate signal"
        return None

    def session_start(self, now: float) -> None:
        self.session_started = now
        self.heartbeat_at = now  # starting is a sign of life
        self.hr_slowed = False
        self._notified.clear()

    def session_end(self) -> None:
        self.session_started = None
        self.hr_slowed = False

    # --- inputs ----------------------------------------------------------------------------------

    def observe(self, status: DeviceStatus, now: float) -> list[Action]:
        """A reading of the treadmill: track standstill, detect treadmill stops and mismatches."""
        self.measured_kmh = status.speed_kmh
        self.measured_belt = status.belt
        if self.belt_still() and self.commanded.speed_kmh == 0:
            if self.still_since is None:
                self.still_since = now
        else:
            self.still_since = None
        actions: list[Action] = []
        if status.safety_stop and self.latched is None:
            actions.append(
                EStop(
                    EStopCause.TREADMILL,
                    "the treadmill stopped the belt (stop button, safety key or its watchdog)",
                )
            )
        if self.latched is None and self.session_started is not None:
            actions.extend(self._check_mismatch(status, now))
        return actions

    def _check_mismatch(self, status: DeviceStatus, now: float) -> list[Action]:
        want = self.commanded
        wrong_way = status.speed_kmh > 0.3 and status.belt is not want.belt
        off = abs(status.speed_kmh - want.speed_kmh) > self.rules.speed_mismatch_kmh
        detail = (
            f"belt at {status.speed_kmh:.2f} km/h {status.belt}, commanded "
            f"{want.speed_kmh:.2f} km/h {want.belt}"
        )
        if wrong_way:  # the belt runs against the command: no grace
            return [EStop(EStopCause.SPEED_MISMATCH, detail)]
        # While a ramp is under way the belt lags the command; the grace time covers it.
        if off:
            if self.mismatch_since is None:
                self.mismatch_since = now
            elif now - self.mismatch_since >= self.rules.speed_mismatch_grace_s:
                return [EStop(EStopCause.SPEED_MISMATCH, detail)]
        else:
            self.mismatch_since = None
        return []

    def heart_rate(self, bpm: int, now: float) -> list[Action]:
        self.heart_rate_bpm = bpm
        self.heart_rate_at = now
        limit = self.rules.heart_rate_max_bpm
        if self.hr_slowed:
            self.hr_slowed = False
            self._notified.discard("hr_lost")
        if (
            limit is not None
            and bpm > limit
            and self.latched is None
            and self.session_started is not None
        ):
            return [
                EStop(
                    EStopCause.HEART_RATE,
                    f"heart rate {bpm} bpm above safety.heart_rate_max_bpm = {limit}",
                )
            ]
        return []

    def heartbeat(self, now: float) -> None:
        self.heartbeat_at = now

    def broker(self, connected: bool, now: float) -> None:
        if connected:
            self.broker_down_since = None
            self._notified.discard("broker")
        elif self.broker_down_since is None:
            self.broker_down_since = now

    def heart_rate_now(self, now: float) -> int | None:
        """The last heart rate while the signal is fresh; None once it is lost."""
        return self.heart_rate_bpm if self._hr_fresh(now) else None

    def _hr_fresh(self, now: float) -> bool:
        return (
            self.heart_rate_at is not None
            and now - self.heart_rate_at <= self.rules.heart_rate_lost_s
        )

    # --- time-based rules ------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """Rules that fire with time while a session runs."""
        if self.session_started is None or self.latched is not None:
            return []
        rules = self.rules
        out: list[Action] = []
        if (
            rules.deadman_s > 0
            and self.heartbeat_at is not None
            and now - self.heartbeat_at > rules.deadman_s
        ):
            out.append(
                EStop(
                    EStopCause.DEADMAN, f"no heartbeat for {rules.deadman_s:g} s (safety.deadman_s)"
                )
            )
        if rules.heart_rate_max_bpm is not None and not self._hr_fresh(now):
            lost_for = now - (
                self.heart_rate_at if self.heart_rate_at is not None else self.session_started
            )
            if not self.hr_slowed:
                self.hr_slowed = True
                out.append(
                    Notice(
                        "heart_rate_lost",
                        f"no heart-rate signal: slowing to {HR_LOST_SLOW_KMH:g} km/h",
                    )
                )
            if lost_for >= rules.heart_rate_lost_s + rules.hr_lost_stop_s:
                out.append(
                    ControlledStop(
                        StopReason.HEART_RATE_LOST, f"no heart-rate signal for {lost_for:.0f} s"
                    )
                )
        if (
            self.broker_down_since is not None
            and now - self.broker_down_since > rules.broker_loss_s
        ):
            if rules.broker_loss_continue:
                if "broker" not in self._notified:
                    self._notified.add("broker")
                    out.append(
                        Notice(
                            "broker_lost",
                            "MQTT broker lost; continuing (safety.broker_loss_action = continue)",
                        )
                    )
            else:
                out.append(
                    ControlledStop(
                        StopReason.BROKER_LOST,
                        f"MQTT broker lost for more than {rules.broker_loss_s:g} s",
                    )
                )
        if now - self.session_started > rules.max_session_s:
            out.append(
                ControlledStop(
                    StopReason.MAX_DURATION,
                    f"session longer than limits.max_session_s = {rules.max_session_s:g}",
                )
            )
        return out

    # --- what may reach the belt -----------------------------------------------------------------

    def next_speed(
        self, want_kmh: float, want_belt: BeltDirection, walk: WalkDirection, now: float
    ) -> tuple[SpeedCommand, list[Action]]:
        """The speed command to send now for the speed the controller wants.

        Caps by walk direction, slows on heart-rate loss, ramps at the limit in whole wire steps
        (so no two commands differ by more than the ramp allows for the time between them),
        starts at or below the start speed, and reverses only after the belt was measured still
        for the standstill time and a countdown passed. A latched e-stop gives zero at once.
        """
        rules = self.rules
        dt = 0.0 if self._last_eval is None else min(1.0, max(0.0, now - self._last_eval))
        self._last_eval = now
        actions: list[Action] = []
        if self.latched is not None:
            self._ramp_kmh = 0.0
            return self._emit(SpeedCommand(0.0, self.commanded.belt), now), actions
        target = max(0.0, min(want_kmh, rules.speed_cap(walk)))
        if self.hr_slowed:
            target = min(target, HR_LOST_SLOW_KMH)
        if target > 0 and want_belt is not self.commanded.belt:
            target, actions = self._reversal(want_belt, now)
        else:
            self.countdown_started = None
            self.reversal_deferred = False
        self._ramp_kmh = _approach(self._ramp_kmh, target, rules.accel_kmh_s * dt)
        speed = self._quantize(self._ramp_kmh, self.commanded.speed_kmh, now, target)
        if self.commanded.speed_kmh == 0 and speed > rules.start_speed_kmh:
            speed = self._quantize(rules.start_speed_kmh, 0.0, now, rules.start_speed_kmh)  # rule 2
        speed = self._above_minimum(speed, now)
        return self._emit(SpeedCommand(speed, self.commanded.belt), now), actions

    def _emit(self, command: SpeedCommand, now: float) -> SpeedCommand:
        if command != self.commanded:
            self.commanded = command
            self.last_change_at = now
            if command.speed_kmh > 0:
                self.still_since = None
        return command

    def _quantize(self, ramp: float, current: float, now: float, target: float) -> float:
        """Whole wire steps, with a step of hysteresis so a ramp never jitters up and down, and
        never more change than the ramp allows since the last change (checked on the wire)."""
        step = self.rules.speed_resolution_kmh
        budget = self.rules.accel_kmh_s * max(0.0, now - self.last_change_at)
        if step <= 0:
            return round(min(max(ramp, current - budget), current + budget), 9)
        up = math.floor(min(ramp, current + budget) / step + 1e-6) * step
        down = math.ceil(max(ramp, current - budget) / step - 1e-6) * step
        if ramp <= target + 1e-9 and ramp < current:
            # Arrived from above: settle on the last whole step at or below the target.
            floor_target = math.floor(target / step + 1e-6) * step
            down = max(floor_target, math.ceil((current - budget) / step - 1e-6) * step)
        if up > current + 1e-9:
            return round(up, 9)
        if down < current - 1e-9:
            return round(down, 9)
        return current

    def _above_minimum(self, speed: float, now: float) -> float:
        """No speed between 0 and the treadmill's minimum: 0 instead, or the minimum itself
        while the ramp does not yet allow the drop from where the belt is to 0.

        Going up, the wire stays at 0 until the ramp (and its budget) reaches the minimum, so
        the jump 0 -> minimum is itself within the ramp. Going down, it holds the minimum (or
        steps down to it) until a drop to 0 is within the budget. A target below the minimum
        is therefore 0: rounded towards slower, like every wire conversion.
        """
        low = self.rules.speed_min_kmh
        if speed == 0 or speed >= low - 1e-9:
            return speed
        current = self.commanded.speed_kmh
        budget = self.rules.accel_kmh_s * max(0.0, now - self.last_change_at)
        if current <= budget + 1e-9:
            return 0.0
        return low

    def _reversal(self, want_belt: BeltDirection, now: float) -> tuple[float, list[Action]]:
        """(target, actions) while a change of belt direction is wanted (rule 4)."""
        rules = self.rules
        actions: list[Action] = []
        still_long = (
            self.commanded.speed_kmh == 0
            and self.still_since is not None
            and now - self.still_since >= rules.reversal_standstill_s
        )
        if not still_long:
            self.countdown_started = None
            if not self.reversal_deferred:
                self.reversal_deferred = True
                actions.append(
                    Notice(
                        "reversal_deferred",
                        f"the belt reverses to {want_belt} after {rules.reversal_standstill_s:g} s "
                        "measured still and a countdown",
                    )
                )
            return 0.0, actions
        if self.countdown_started is None:
            self.countdown_started = now
            actions.append(
                Notice(
                    "countdown", f"the belt starts {want_belt} in {rules.reversal_countdown_s:g} s"
                )
            )
        if now - self.countdown_started < rules.reversal_countdown_s:
            return 0.0, actions
        self.countdown_started = None
        self.reversal_deferred = False
        self._ramp_kmh = 0.0
        self.commanded = SpeedCommand(0.0, want_belt)
        self.last_change_at = now
        return self.rules.start_speed_kmh, actions

    def clamp_incline(self, want_pct: float, walk: WalkDirection) -> float:
        return max(0.0, min(want_pct, self.rules.incline_cap(walk)))


def _approach(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step
