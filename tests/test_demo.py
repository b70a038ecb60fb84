"""`treadctl demo` as a user runs it: a real subprocess, simulated treadmill, belt ends stopped."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_the_belt_in_reverse_and_stops() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "treadctl", "demo", "--hold", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    running = [line for line in lines if "running reverse" in line]
    assert running, result.stdout
    assert max(float(line.split()[3]) for line in running) <= 2.0  # never above the demo target
    assert "belt stopped" in lines[-2]
    assert lines[-1] == "demo finished: belt stopped"
