"""The runner on a fake clock: schedule, set-points, pause, resume, skip, abort, time scale."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import FakeClock
from treadctl.core.program import Program
from treadctl.core.runner import (
    Cue,
    Finished,
    ProgramRunner,
    RunnerError,
    RunnerEvent,
    RunnerStatus,
    StepStarted,
)
from treadctl.core.timeline import US, DeviceProfile, StepKind, Timeline, build_timeline
from treadctl.drivers.trackmaster import WoodwayDriver

WOODWAY = DeviceProfile("woodway", WoodwayDriver.capabilities)
A = WOODWAY.accel_kmh_s


def make(*phases: tuple[str, float, float]) -> Program:
    return Program.model_validate(
        {
            "name": "t",
            "title": "T",
            "phases": [
                {"name": f"p{i}", "walk": w, "duration": d, "speed_kmh": v, "cue": f"cue {i}"}
                for i, (w, d, v) in enumerate(phases, 1)
            ],
        }
    )


def runner_for(program: Program, clock: FakeClock, **kw: float) -> tuple[ProgramRunner, Timeline]:
    tl = build_timeline(program, WOODWAY)
    return ProgramRunner(tl, clock, **kw), tl


def starts(events: list[RunnerEvent]) -> list[tuple[int, int]]:
    return [(e.index, e.at_us) for e in events if isinstance(e, StepStarted)]


def test_start_reports_the_first_step_and_its_cue() -> None:
    clock = FakeClock(100.0)
    runner, _ = runner_for(make(("forward", 60, 2.0)), clock)
    events = runner.start()
    assert starts(events) == [(0, 100 * US)]
    assert isinstance(events[1], Cue)
    assert events[1].text.startswith("Get ready to walk forward")
    sp = runner.setpoint()
    assert sp.status is RunnerStatus.RUNNING
    assert sp.step.kind is StepKind.COUNTDOWN
    assert sp.speed_kmh == 0.0


def test_boundaries_fall_on_schedule_however_late_the_poll() -> None:
    clock = FakeClock(0.0)
    runner, tl = runner_for(make(("forward", 60, 2.0), ("backward", 60, 1.0)), clock)
    runner.start()
    clock.advance(500)  # a very late poll crosses every boundary
    _, events = runner.poll()
    assert starts(events) == [(i, s.start_us) for i, s in enumerate(tl.steps) if i > 0]
    assert events[-1] == Finished(tl.total_us)
    assert runner.status is RunnerStatus.FINISHED
    assert runner.poll()[1] == []


def test_setpoint_follows_the_ramps() -> None:
    clock = FakeClock(0.0)
    runner, tl = runner_for(make(("forward", 60, 2.0)), clock)
    runner.start()
    clock.advance(3 + 1)  # countdown, then 1 s of ramp
    sp, events = runner.poll()
    assert [type(e) for e in events] == [StepStarted, Cue]
    assert sp.step.kind is StepKind.PHASE
    assert sp.speed_kmh == pytest.approx(A * 1)
    clock.advance(10)
    assert runner.poll()[0].speed_kmh == pytest.approx(2.0)
    assert runner.setpoint().step_remaining_s == pytest.approx(60 - 11)
    assert runner.setpoint().remaining_s == pytest.approx(tl.total_s - 14)


def test_pause_freezes_the_schedule_and_resume_ramps_up_from_zero() -> None:
    clock = FakeClock(0.0)
    runner, tl = runner_for(make(("forward", 60, 2.0), ("forward", 60, 3.0)), clock)
    runner.start()
    clock.advance(30)
    runner.pause()
    assert runner.setpoint().speed_kmh == 0.0
    assert runner.setpoint().status is RunnerStatus.PAUSED
    clock.advance(45)  # paused
    assert runner.poll()[1] == []
    runner.resume()
    assert runner.setpoint().speed_kmh == 0.0  # the belt is still: no jump back to 2 km/h
    clock.advance(1)
    assert runner.poll()[0].speed_kmh == pytest.approx(A)
    clock.advance(200)
    _, events = runner.poll()
    # every later boundary moved by exactly the 45 s pause
    assert starts(events) == [(i, s.start_us + 45 * US) for i, s in enumerate(tl.steps) if i > 1]
    assert events[-1] == Finished(tl.total_us + 45 * US)


def test_skip_ends_the_phase_and_replans_the_reversal_from_the_current_speed() -> None:
    clock = FakeClock(0.0)
    runner, _ = runner_for(make(("forward", 60, 3.0), ("backward", 60, 1.0)), clock)
    runner.start()
    clock.advance(3 + 10)  # 10 s into the forward phase: at 3.0 km/h (reached after 5.6 s)
    events = runner.skip()
    kinds = [e.step.kind for e in events if isinstance(e, StepStarted)]
    assert kinds == [StepKind.PHASE, StepKind.RAMP_DOWN]  # the phase began (unpolled), then ended
    ramp = runner.setpoint().step
    assert ramp.from_kmh == pytest.approx(3.0)
    assert ramp.duration_us == pytest.approx(3.0 / A * US, abs=1)
    clock.advance(ramp.duration_us / US)
    sp, events = runner.poll()
    assert sp.step.kind is StepKind.STANDSTILL
    assert sp.speed_kmh == 0.0
    with pytest.raises(RunnerError, match="safety sequence"):
        runner.skip()


def test_skip_of_the_last_phase_ramps_down_and_finishes() -> None:
    clock = FakeClock(0.0)
    runner, _ = runner_for(make(("backward", 60, 1.0)), clock)
    runner.start()
    clock.advance(20)
    runner.skip()
    assert runner.setpoint().step.kind is StepKind.RAMP_DOWN
    clock.advance(10)
    _, events = runner.poll()
    assert isinstance(events[-1], Finished)


def test_abort_stops_the_setpoint() -> None:
    clock = FakeClock(0.0)
    runner, _ = runner_for(make(("forward", 60, 2.0)), clock)
    runner.start()
    clock.advance(20)
    runner.abort()
    assert runner.status is RunnerStatus.ABORTED
    assert runner.setpoint().speed_kmh == 0.0
    clock.advance(100)
    assert runner.poll()[1] == []
    assert runner.abort() == []


def test_time_scale_compresses_the_schedule() -> None:
    clock = FakeClock(0.0)
    runner, tl = runner_for(make(("forward", 60, 2.0)), clock, time_scale=60.0)
    runner.start()
    clock.advance(tl.total_s / 60 - 0.001)
    assert runner.poll()[0].status is RunnerStatus.RUNNING
    clock.advance(0.002)
    _, events = runner.poll()
    assert events[-1] == Finished(round(tl.total_us / 60))


def test_commands_in_the_wrong_state_are_refused() -> None:
    clock = FakeClock(0.0)
    runner, _ = runner_for(make(("forward", 60, 2.0)), clock)
    with pytest.raises(RunnerError):
        runner.pause()
    with pytest.raises(RunnerError):
        runner.resume()
    with pytest.raises(RunnerError):
        runner.skip()
    runner.start()
    with pytest.raises(RunnerError):
        runner.start()
    with pytest.raises(RunnerError, match="safety sequence"):
        runner.skip()  # during the start countdown
    with pytest.raises(RunnerError):
        ProgramRunner(build_timeline(make(("forward", 1, 1.0)), WOODWAY), clock, time_scale=0)


# --- properties --------------------------------------------------------------------------------

phase_st = st.tuples(
    st.sampled_from(["forward", "backward"]),
    st.integers(1, 600_000).map(lambda ms: ms / 1000),  # durations to the millisecond
    st.integers(0, 30).map(lambda tenth: tenth / 10),  # 0-3 km/h, within both caps
)
actions_st = st.lists(
    st.tuples(
        st.integers(0, 200_000_000),  # µs to advance
        st.sampled_from(["poll", "pause", "poll"]),
        st.integers(1, 120_000_000),  # µs paused
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(phases=st.lists(phase_st, min_size=1, max_size=6), actions=actions_st)
def test_property_schedule_caps_and_ramps_hold_under_any_pauses(
    phases: list[tuple[str, float, float]], actions: list[tuple[int, str, int]]
) -> None:
    clock = FakeClock(0.0)
    clock.set_us(5_000_000)
    runner, tl = runner_for(make(*phases), clock)
    start_us = 5_000_000
    events = list(runner.start())
    pauses: list[tuple[int, int]] = []  # (program µs when paused, wall µs paused)
    samples: list[tuple[int, float, bool]] = []  # (program µs, speed, first after a resume)
    after_resume = False

    def sample() -> None:
        nonlocal after_resume
        sp = runner.setpoint()
        cap, _ = WOODWAY.speed_cap(sp.walk)
        assert 0.0 <= sp.speed_kmh <= cap + 1e-9
        if sp.status is RunnerStatus.RUNNING:
            samples.append((round(sp.elapsed_s * US), sp.speed_kmh, after_resume))
            after_resume = False

    for advance, action, pause_len in actions:
        clock.set_us(round(clock.now * US) + advance)
        if runner.status is not RunnerStatus.RUNNING:
            break
        events += runner.poll()[1]
        sample()
        if action == "pause" and runner.status is RunnerStatus.RUNNING:
            events += runner.pause()
            paused_at = round(runner.setpoint().elapsed_s * US)
            clock.set_us(round(clock.now * US) + pause_len)
            events += runner.resume()
            pauses.append((paused_at, pause_len))
            after_resume = True
            sample()
    clock.set_us(round(clock.now * US) + tl.total_us + 1)
    events += runner.poll()[1]

    def paused_before(offset: int) -> int:
        return sum(length for at, length in pauses if at < offset)

    for event in events:
        if isinstance(event, StepStarted):
            expected = (
                start_us
                + tl.steps[event.index].start_us
                + paused_before(tl.steps[event.index].start_us)
            )
            assert event.at_us == expected
    finished = [e for e in events if isinstance(e, Finished)]
    assert finished == [Finished(start_us + tl.total_us + sum(length for _, length in pauses))]
    for (p1, v1, _), (p2, v2, resumed) in itertools.pairwise(samples):
        if resumed:
            assert v2 <= 1e-9  # the moment of resuming: from a standstill
        else:
            assert abs(v2 - v1) <= A * (p2 - p1) / US + 1e-6


@settings(max_examples=50, deadline=None)
@given(
    # the last phase (speed 0) is long enough to ramp down from 1 km/h: no ramp-down step added
    cuts=st.lists(st.integers(1, 3_590_000_000), min_size=0, max_size=8, unique=True),
    pauses=st.lists(st.integers(1, 600_000_000), max_size=5),
)
def test_property_sixty_minutes_end_at_sixty_minutes_plus_pauses(
    cuts: list[int], pauses: list[int]
) -> None:
    bounds = [0, *sorted(cuts), 3_600_000_000]
    durations = [(b - a) / US for a, b in itertools.pairwise(bounds)]
    phases = [("forward", d, 1.0) for d in durations[:-1]] + [("forward", durations[-1], 0.0)]
    profile = DeviceProfile("woodway", WoodwayDriver.capabilities, countdown_s=0.0)
    tl = build_timeline(make(*phases), profile)
    assert tl.total_us == 3_600_000_000  # no countdown, ends at speed 0: no ramp-down
    clock = FakeClock(0.0)
    runner = ProgramRunner(tl, clock)
    runner.start()
    paused = 0
    for i, length in enumerate(pauses):
        clock.set_us(round(clock.now * US) + (i + 1) * 300_000_000)
        if runner.status is not RunnerStatus.RUNNING:
            break
        runner.pause()
        if runner.setpoint().status is RunnerStatus.FINISHED:
            break  # the program finished before this pause
        clock.set_us(round(clock.now * US) + length)
        runner.resume()
        paused += length
    clock.set_us(10 * 3_600_000_000)
    events = runner.poll()[1] if runner.status is RunnerStatus.RUNNING else []
    assert runner.status is RunnerStatus.FINISHED
    assert runner.wall_us(tl.total_us) == 3_600_000_000 + paused
    if events:
        assert events[-1] == Finished(3_600_000_000 + paused)


def test_next_boundary_is_when_the_following_step_starts_then_the_end() -> None:
    """What the controller wakes for, so that phase changes are not left to its next poll."""
    clock = FakeClock(100.0)
    runner, tl = runner_for(make(("forward", 60, 2.0), ("forward", 30, 3.0)), clock, time_scale=2)
    assert runner.next_boundary_s() is None  # not started
    runner.start()
    for step in tl.steps[1:]:
        at = runner.next_boundary_s()
        assert at == pytest.approx(100.0 + step.start_us / US / 2, abs=2e-6)
        assert at is not None
        clock.now = at - 2e-6
        assert starts(runner.poll()[1]) == []
        clock.now = at
        _, events = runner.poll()
        assert starts(events)[0][0] == tl.steps.index(step)  # reached, and not before
    assert runner.next_boundary_s() == pytest.approx(100.0 + tl.total_us / US / 2, abs=2e-6)
    runner.pause()
    assert runner.next_boundary_s() is None
