"""`treadctl …` as a user runs it: `python -m treadctl` in a subprocess, its output as text."""

from __future__ import annotations

import subprocess
import sys


def run_treadctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "treadctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
