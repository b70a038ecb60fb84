"""Deterministic simulation explorer: the real controller on a scripted driver in virtual time.

Run: uv run python bench/explore.py [--seeds N] [--first F] [--steps S] [--json FILE]
Replay one seed step by step: uv run python bench/explore.py --seed 1234 --verbose

Each seed draws its own conditions (line noise, safety settings) and a sequence of stimuli:
starts, manual sets, pause/resume/skip/stop/reset, e-stops from every source, heart rate,
dead-man beats, broker up/down, key pulls, unplugged cables, slipping belts, bursts of MQTT
messages. The invariants (tests/explorer/invariants.py) are checked after every step and on
every snapshot, event, answer and driver call. A failing seed prints its replay command; the
same seed always gives the same trace (its hash is printed with --seed).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchkit import make_parser, table, write_json
from explorer.campaign import DEFAULT_STEPS, Campaign, explore, quiet_logs
from explorer.world import run_seed

import treadctl


def replay(seed: int, steps: int, *, verbose: bool) -> int:
    with quiet_logs():
        result = run_seed(seed, steps, echo=print if verbose else None)
    print(f"seed {seed}: {result.steps} steps, {result.virtual_s:.1f} s virtual")
    print(f"trace hash {result.trace_hash}")
    for violation in result.violations:
        print(violation.line())
    return 1 if result.violations else 0


def progress(campaign: Campaign) -> None:
    if campaign.seeds % 500 == 0:
        print(
            f"  {campaign.seeds} seeds, {campaign.steps} steps, {campaign.elapsed_s:.0f} s, "
            f"{len(campaign.failures)} failing",
            flush=True,
        )


def coverage_rows(campaign: Campaign) -> list[list[object]]:
    keep = ("estop:", "event:", "wire:", "answer:")
    rows: list[list[object]] = [
        [key, count] for key, count in sorted(campaign.coverage.items()) if key.startswith(keep)
    ]
    return rows


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps per seed")
    parser.add_argument("--seed", type=int, help="run this one seed (with --verbose: its trace)")
    parser.add_argument("--verbose", action="store_true", help="print the step-by-step trace")
    parser.add_argument("--max-failures", type=int, help="stop after this many failing seeds")
    parser.add_argument("--show", type=int, default=10, help="failing seeds to print")
    parser.add_argument("--coverage", action="store_true", help="print what was exercised")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.seed is not None:
        return replay(args.seed, args.steps, verbose=args.verbose)

    print(f"treadctl from {Path(treadctl.__file__).parent}")
    seeds = range(args.first, args.first + args.seeds)
    campaign = explore(seeds, args.steps, max_failures=args.max_failures, progress=progress)
    for failure in campaign.failures[: args.show]:
        print(failure.report(args.steps))
        before = failure.steps_before + failure.steps
        print(f"  found after {failure.seeds_before + 1} seeds, {before} steps")
    print(
        table(
            ["seeds", "steps", "virtual s", "elapsed s", "steps/s", "failing seeds"],
            [
                [
                    campaign.seeds,
                    campaign.steps,
                    round(campaign.virtual_s),
                    round(campaign.elapsed_s, 1),
                    round(campaign.steps_per_s),
                    len(campaign.failures),
                ]
            ],
        )
    )
    if campaign.failures:
        rows: list[list[object]] = [
            [
                name,
                len(failures),
                failures[0].seed,
                failures[0].seeds_before + 1,
                failures[0].steps_before + failures[0].steps,
            ]
            for name, failures in campaign.by_invariant().items()
        ]
        print(table(["invariant", "failing seeds", "first seed", "seeds", "steps"], rows))
    if args.coverage:
        print(table(["exercised", "count"], coverage_rows(campaign)))
    out = write_json(
        args.json,
        "explore",
        {
            "treadctl": str(Path(treadctl.__file__).parent),
            "first_seed": args.first,
            "seeds": campaign.seeds,
            "steps_per_seed": args.steps,
            "steps": campaign.steps,
            "virtual_s": round(campaign.virtual_s, 1),
            "elapsed_s": round(campaign.elapsed_s, 2),
            "steps_per_s": round(campaign.steps_per_s, 1),
            "failures": [
                {
                    "seed": f.seed,
                    "step": f.steps,
                    "invariants": [v.invariant for v in f.violations],
                    "details": [v.line() for v in f.violations],
                    "seeds_before": f.seeds_before,
                    "steps_before": f.steps_before,
                }
                for f in campaign.failures
            ],
            "coverage": dict(sorted(campaign.coverage.items())),
        },
    )
    print(f"JSON: {out}")
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())
