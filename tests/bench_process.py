"""A benchmark under bench/ run as a person runs it: its own process, its working files in the
test's tmp_path (removed by pytest). For the tests that prove the benchmarks work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, args: list[str], tmp_path: Path, timeout: float) -> str:
    """The benchmark's standard output; fails the test, with its stderr, when it fails."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=BENCH.parent,
        env=os.environ | {"TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
