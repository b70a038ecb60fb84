"""Many seeds: run them, count steps, collect the failing seeds with their replay commands."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import structlog

from explorer.invariants import Violation
from explorer.world import ControllerType, SeedResult, run_seed
from treadctl.control.controller import Controller

DEFAULT_STEPS = 60


def replay_command(seed: int, steps: int) -> str:
    extra = "" if steps == DEFAULT_STEPS else f" --steps {steps}"
    return f"uv run python bench/explore.py --seed {seed}{extra} --verbose"


@dataclass(frozen=True, slots=True)
class Failure:
    seed: int
    steps: int  # steps of this seed until the violation
    violations: tuple[Violation, ...]
    seeds_before: int  # seeds run before this one in the campaign
    steps_before: int  # steps run before this seed in the campaign

    def report(self, steps_per_seed: int) -> str:
        lines = [f"seed {self.seed} fails at step {self.steps}:"]
        lines += ["  " + v.line() for v in self.violations]
        lines.append("  replay: " + replay_command(self.seed, steps_per_seed))
        return "\n".join(lines)


@dataclass
class Campaign:
    steps_per_seed: int
    seeds: int = 0
    steps: int = 0
    virtual_s: float = 0.0
    elapsed_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def by_invariant(self) -> dict[str, list[Failure]]:
        """Failing seeds by invariant broken (any of a seed's violations), in seed order."""
        out: dict[str, list[Failure]] = {}
        for failure in self.failures:
            for name in dict.fromkeys(v.invariant for v in failure.violations):
                out.setdefault(name, []).append(failure)
        return dict(sorted(out.items()))

    def add(self, result: SeedResult) -> None:
        if result.violations:
            self.failures.append(
                Failure(result.seed, result.steps, tuple(result.violations), self.seeds, self.steps)
            )
        self.seeds += 1
        self.steps += result.steps
        self.virtual_s += result.virtual_s
        self.coverage.update(result.coverage)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The controller logs every e-stop and failure it handles; millions of steps would print
    millions of lines (and format them: most of the time). Restored afterwards."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**before)


def explore(
    seeds: Iterable[int],
    steps: int = DEFAULT_STEPS,
    *,
    controller_type: ControllerType = Controller,
    max_failures: int | None = None,
    progress: Callable[[Campaign], None] | None = None,
) -> Campaign:
    campaign = Campaign(steps)
    start = time.perf_counter()
    with quiet_logs():
        for seed in seeds:
            campaign.add(run_seed(seed, steps, controller_type=controller_type))
            campaign.elapsed_s = time.perf_counter() - start
            if progress is not None:
                progress(campaign)
            if max_failures is not None and len(campaign.failures) >= max_failures:
                break
    return campaign
