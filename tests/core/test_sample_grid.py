"""The sampling grid the recorder and the telemetry share (core/sample_grid.py), on given times."""

from __future__ import annotations

from treadctl.core.sample_grid import SampleGrid


def taken(grid: SampleGrid, times: list[float]) -> list[float]:
    return [t for t in times if grid.take(t)]


def test_every_other_tick_at_half_the_tick_rate_with_jitter() -> None:
    ticks = [0.0, 0.1, 0.201, 0.299, 0.4, 0.502, 0.6]
    assert taken(SampleGrid(5.0), ticks) == [0.0, 0.201, 0.4, 0.6]


def test_a_quarter_period_early_is_on_time_and_earlier_is_not() -> None:
    grid = SampleGrid(5.0)
    assert grid.take(10.0)
    assert not grid.is_due(10.149)
    assert grid.is_due(10.15)


def test_after_a_gap_the_grid_reanchors_and_never_bursts() -> None:
    grid = SampleGrid(10.0)
    assert taken(grid, [0.0, 0.1, 0.2, 0.75, 0.76, 0.8, 0.85]) == [0.0, 0.1, 0.2, 0.75, 0.85]


def test_a_new_rate_applies_from_the_next_sample() -> None:
    grid = SampleGrid(10.0)
    assert grid.take(0.0)
    grid.set_rate(2.0)
    assert taken(grid, [0.1, 0.2, 0.45, 0.6]) == [0.1, 0.6]
