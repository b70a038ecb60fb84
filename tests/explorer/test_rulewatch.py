"""The rule deadlines the explorer holds the controller to."""

from __future__ import annotations

from explorer.rulewatch import SLACK_S, RuleWatch
from treadctl.core import commands as cmd
from treadctl.core.safety import SafetyRules
from treadctl.core.state import Mode


def test_dead_man_silence_is_overdue_after_its_time_and_the_slack() -> None:
    watch = RuleWatch(SafetyRules(deadman_s=2.0))
    watch.mode(Mode.RUNNING, 10.0)
    watch.sent(cmd.Heartbeat(), Mode.RUNNING, 11.0)
    assert watch.overdue(11.0 + 2.0 + SLACK_S) is None
    assert watch.overdue(11.1 + 2.0 + SLACK_S) == "no heartbeat for 4.1 s (deadman_s 2)"
    watch.mode(Mode.ESTOP, 14.0)
    assert watch.overdue(20.0) is None


def test_a_heart_rate_over_the_limit_during_a_session_must_stop_it() -> None:
    watch = RuleWatch(SafetyRules(heart_rate_max_bpm=150))
    watch.mode(Mode.IDLE, 0.0)
    watch.sent(cmd.HeartRate(170), Mode.IDLE, 0.0)  # no session: nothing to stop
    assert watch.overdue(5.0) is None
    watch.mode(Mode.PAUSED, 5.0)
    watch.sent(cmd.HeartRate(150), Mode.PAUSED, 5.0)  # at the limit, not above
    watch.sent(cmd.HeartRate(400), Mode.PAUSED, 5.0)  # refused out of range
    assert watch.overdue(10.0) is None
    watch.sent(cmd.HeartRate(151), Mode.PAUSED, 10.0)
    assert watch.overdue(10.0 + SLACK_S + 0.1) is not None
    watch.mode(Mode.ESTOP, 10.05)
    assert watch.overdue(20.0) is None


def test_broker_loss_and_maximum_duration_stop_an_unstopped_session() -> None:
    watch = RuleWatch(SafetyRules(broker_loss_s=3.0, max_session_s=20.0))
    watch.mode(Mode.RUNNING, 0.0)
    watch.sent(cmd.BrokerState(connected=False), Mode.RUNNING, 1.0)
    watch.sent(cmd.BrokerState(connected=False), Mode.RUNNING, 2.0)  # still down since 1.0
    assert watch.overdue(1.0 + 3.0 + SLACK_S) is None
    assert watch.overdue(1.1 + 3.0 + SLACK_S) is not None
    watch.mode(Mode.STOPPING, 5.0)
    assert watch.overdue(30.0) is None
    watch.sent(cmd.BrokerState(connected=True), Mode.STOPPING, 30.0)
    watch.mode(Mode.IDLE, 31.0)
    watch.mode(Mode.RUNNING, 40.0)
    assert watch.overdue(40.0 + 20.0 + SLACK_S) is None
    assert watch.overdue(40.1 + 20.0 + SLACK_S) == "session longer than max_session_s 20"
    continuing = RuleWatch(SafetyRules(broker_loss_s=3.0, broker_loss_continue=True))
    continuing.mode(Mode.RUNNING, 0.0)
    continuing.sent(cmd.BrokerState(connected=False), Mode.RUNNING, 0.0)
    assert continuing.overdue(100.0) is None
