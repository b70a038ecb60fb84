"""The progression rule (clinic/progression.py, pure): +step a week unless a symptom guard holds
it or steps it back, capped by what the person's limits allow, never below the floor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from treadctl.clinic.progression import Proposal, propose
from treadctl.clinic.views import AdverseEvent, Annotation, ProgressionRule, SessionDose

RULE = ProgressionRule()  # +10 %, step back 10 %, a pain rise of 2 holds
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
FLOOR = 0.5


def _session(
    day: int = 0,
    *,
    ended_how: str = "finished",
    end_cause: str | None = None,
    pain: tuple[int, int] | None = None,
    adverse: tuple[AdverseEvent, ...] = (),
) -> SessionDose:
    note = None
    if pain is not None or adverse:
        before, after = pain or (None, None)
        note = Annotation(pain_before=before, pain_after=after, adverse_events=adverse)
    started = MONDAY + timedelta(days=day)
    return SessionDose(
        id=f"s-{day}",
        device_id="tm-1",
        person_id="mrs-k",
        program="alghadir2019-knee-oa",
        parameters={},
        started=started,
        ended=started + timedelta(minutes=30),
        ended_how=ended_how,
        end_cause=end_cause,
        planned_s=1800.0,
        duration_s=1800.0,
        backward_s=1700.0,
        distance_m=900.0,
        speed_backward_avg_kmh=2.0,
        speed_max_kmh=2.0,
        heart_rate_avg_bpm=None,
        heart_rate_peak_bpm=None,
        annotation=note,
    )


def _below(cap: float) -> Callable[[float], bool]:
    return lambda value: value <= cap + 1e-9


def _propose(
    current: float,
    week: list[SessionDose],
    *,
    cap: float = 3.0,
    rule: ProgressionRule = RULE,
    target: int = 3,
) -> Proposal:
    return propose(rule, current, week, target=target, floor=FLOOR, allowed=_below(cap))


FULL_WEEK = [_session(0), _session(2), _session(4)]


def test_a_full_week_without_symptoms_increases_by_ten_percent_rounded() -> None:
    assert _propose(2.0, FULL_WEEK) == Proposal(
        "increase", 2.2, "all 3 sessions done, no symptom: +10 %"
    )
    assert _propose(1.85, FULL_WEEK).new_value == 2.0  # 2.035 shows as 2.0 km/h
    assert _propose(1.0, [*FULL_WEEK, _session(5)]).new_value == 1.1  # more than planned is fine
    assert _propose(2.0, FULL_WEEK, rule=ProgressionRule(step_pct=5)).new_value == 2.1


def test_an_increase_is_capped_by_what_the_limits_allow() -> None:
    capped = _propose(2.0, FULL_WEEK, cap=2.15)
    assert capped == Proposal(
        "increase", 2.1, "all 3 sessions done, no symptom: +10 %, capped at 2.1 by the limits"
    )
    at_limit = _propose(2.0, FULL_WEEK, cap=2.0)
    assert at_limit == Proposal("hold", 2.0, "at the person's limit or the program's maximum: hold")


def test_a_pain_rise_of_two_points_holds() -> None:
    week = [_session(0), _session(2, pain=(3, 5)), _session(4)]
    assert _propose(2.0, week) == Proposal("hold", 2.0, "pain rose by 2 points on Wed 09 Dec: hold")
    smaller = [_session(0), _session(2, pain=(3, 4)), _session(4, pain=(5, 3))]
    assert _propose(2.0, smaller).decision == "increase"


def test_a_session_that_ended_early_holds() -> None:
    week = [_session(0), _session(2, ended_how="stopped", end_cause="operator"), _session(4)]
    assert _propose(2.0, week) == Proposal(
        "hold", 2.0, "the session on Wed 09 Dec ended early (stopped, operator): hold"
    )
    estop = [_session(0), _session(1), _session(3, ended_how="estop")]
    assert _propose(2.0, estop).reason == "the session on Thu 10 Dec ended early (estop): hold"


def test_too_few_sessions_hold() -> None:
    assert _propose(2.0, FULL_WEEK[:2]) == Proposal("hold", 2.0, "2 of 3 sessions that week: hold")
    assert _propose(2.0, []) == Proposal("hold", 2.0, "0 of 3 sessions that week: hold")


def test_an_adverse_event_steps_back() -> None:
    fall = AdverseEvent("near_fall", "caught the rail")
    week = [_session(0), _session(2, adverse=(fall,)), _session(4)]
    assert _propose(2.0, week) == Proposal(
        "step_back", 1.8, "adverse event (near_fall) on Wed 09 Dec: step back 10 %"
    )
    small = _propose(0.875, week, rule=ProgressionRule(step_back_pct=1))
    assert (small.decision, small.new_value) == ("step_back", 0.8)  # rounded down, never up


def test_two_pain_rises_step_back() -> None:
    week = [_session(0, pain=(2, 4)), _session(2, pain=(1, 6)), _session(4)]
    rule = ProgressionRule(step_back_pct=20)
    assert _propose(2.0, week, rule=rule) == Proposal(
        "step_back", 1.6, "pain rose by 2+ points in 2 sessions: step back 20 %"
    )


def test_a_step_back_stops_at_the_parameters_minimum() -> None:
    fall = (AdverseEvent("fall", "sat down on the belt"),)
    assert _propose(0.55, [_session(0, adverse=fall)]).new_value == FLOOR
    assert _propose(FLOOR, [_session(0, adverse=fall)]).new_value == FLOOR


def test_a_value_above_limits_tightened_since_is_brought_down_to_them() -> None:
    held = _propose(2.5, FULL_WEEK[:1], cap=2.0)
    assert held.decision == "step_back"
    assert held.new_value == 2.0
    assert "limit" in held.reason
    stepped = _propose(2.5, [_session(0, pain=(1, 3)), _session(1, pain=(1, 3))], cap=1.95)
    assert (stepped.decision, stepped.new_value) == ("step_back", 1.9)


# --- properties -----------------------------------------------------------------------------

SPEEDS = st.floats(min_value=FLOOR, max_value=3.0, allow_nan=False)
RULES = st.builds(
    ProgressionRule,
    step_pct=st.floats(min_value=0.5, max_value=25),
    step_back_pct=st.floats(min_value=0.5, max_value=50),
    pain_rise_max=st.integers(min_value=1, max_value=10),
)
PAIN = st.none() | st.tuples(st.integers(0, 10), st.integers(0, 10))
ADVERSE = st.lists(st.builds(AdverseEvent, st.just("pain"), st.just("sore")), max_size=1)
SESSIONS = st.builds(
    lambda day, how, pain, adverse: _session(day, ended_how=how, pain=pain, adverse=tuple(adverse)),
    st.integers(0, 6),
    st.sampled_from(["finished", "finished", "finished", "stopped", "estop", "fault"]),
    PAIN,
    ADVERSE,
)
WEEKS = st.lists(SESSIONS, max_size=6)


@given(rule=RULES, current=SPEEDS, cap=SPEEDS, week=WEEKS, target=st.integers(1, 5))
def test_the_proposal_is_always_what_the_limits_allow(
    rule: ProgressionRule, current: float, cap: float, week: list[SessionDose], target: int
) -> None:
    proposal = _propose(current, week, cap=cap, rule=rule, target=target)
    assert _below(cap)(proposal.new_value), proposal


@given(rule=RULES, current=SPEEDS, cap=SPEEDS, week=WEEKS, target=st.integers(1, 5))
def test_the_proposal_never_goes_below_the_floor(
    rule: ProgressionRule, current: float, cap: float, week: list[SessionDose], target: int
) -> None:
    proposal = _propose(current, week, cap=cap, rule=rule, target=target)
    assert proposal.new_value >= FLOOR, proposal


@given(rule=RULES, current=SPEEDS, cap=SPEEDS, week=WEEKS, target=st.integers(1, 5))
def test_no_increase_when_a_guard_fires(
    rule: ProgressionRule, current: float, cap: float, week: list[SessionDose], target: int
) -> None:
    proposal = _propose(current, week, cap=cap, rule=rule, target=target)
    rises = [
        s.annotation.pain_rise
        for s in week
        if s.annotation is not None and s.annotation.pain_rise is not None
    ]
    guarded = (
        any(s.annotation is not None and s.annotation.adverse_events for s in week)
        or any(rise >= rule.pain_rise_max for rise in rises)
        or any(s.ended_early for s in week)
        or len(week) < target
    )
    if guarded:
        assert proposal.decision != "increase", proposal
        assert proposal.new_value <= current, proposal
    if proposal.decision == "increase":
        assert current < proposal.new_value <= current * (1 + rule.step_pct / 100) + 0.05
