"""Safety rules that must have fired by a deadline, judged from what the world sent and the
modes it observed: a heart rate above the limit during a session, dead-man silence, the broker
gone past its grace time, the maximum session duration. The supervisor's own tests prove the
rules; this proves the controller's plumbing delivers their inputs and carries out the result
(a heart rate or broker state dropped on the way is caught here as a rule that never fired).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from treadctl.core import commands as cmd
from treadctl.core.commands import Command
from treadctl.core.safety import SafetyRules
from treadctl.core.state import Mode

IN_SESSION = (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING)
UNSTOPPED = (Mode.RUNNING, Mode.PAUSED)
OUT_OF_SESSION = (Mode.IDLE, Mode.ESTOP, Mode.FAULT)
# Virtual seconds a rule may take beyond its own time: the next tick (0.1 s) behind an exchange
# that may itself be slow (a lost link takes up to 0.75 s to be declared).
SLACK_S = 2.0


@dataclass
class RuleWatch:
    rules: SafetyRules
    session_since: float | None = None  # in a session (running, paused, stopping) since
    unstopped_since: float | None = None  # running or paused since
    out_of_session_since: float | None = None  # idle, estop or fault since
    last_beat: float = -math.inf
    broker_down_at: float | None = None
    heart_rate_over_at: float | None = None

    def mode(self, mode: Mode, now: float) -> None:
        self.session_since = _since(self.session_since, mode in IN_SESSION, now)
        self.unstopped_since = _since(self.unstopped_since, mode in UNSTOPPED, now)
        self.out_of_session_since = _since(self.out_of_session_since, mode in OUT_OF_SESSION, now)
        if mode not in IN_SESSION:
            self.heart_rate_over_at = None

    def sent(self, command: Command, mode: Mode, now: float) -> None:
        match command:
            case cmd.Heartbeat():
                self.last_beat = now
            case cmd.BrokerState(connected=True):
                self.broker_down_at = None
            case cmd.BrokerState(connected=False) if self.broker_down_at is None:
                self.broker_down_at = now
            case cmd.HeartRate(bpm=bpm):
                limit = self.rules.heart_rate_max_bpm
                over = limit is not None and limit < bpm <= 250
                if over and mode in IN_SESSION and self.heart_rate_over_at is None:
                    self.heart_rate_over_at = now

    def overdue(self, now: float) -> str | None:
        """The rule that should have fired by now and did not, if any."""
        rules = self.rules
        if self.session_since is not None:
            if rules.deadman_s > 0:
                quiet = now - max(self.last_beat, self.session_since)
                if quiet > rules.deadman_s + SLACK_S:
                    return f"no heartbeat for {quiet:.1f} s (deadman_s {rules.deadman_s:g})"
            over = self.heart_rate_over_at
            if over is not None and now - over > SLACK_S:
                return f"heart rate above the limit sent {now - over:.1f} s ago"
        if self.unstopped_since is not None:
            down = self.broker_down_at
            if down is not None and not rules.broker_loss_continue:
                late = now - max(down + rules.broker_loss_s, self.unstopped_since)
                if late > SLACK_S:
                    grace = rules.broker_loss_s
                    return f"broker down for {now - down:.1f} s (broker_loss_s {grace:g})"
            if now - self.unstopped_since > rules.max_session_s + SLACK_S:
                return f"session longer than max_session_s {rules.max_session_s:g}"
        return None


def _since(since: float | None, holds: bool, now: float) -> float | None:
    if not holds:
        return None
    return now if since is None else since
