"""`treadctl sim` as a separate process, steered through its console (stdin and stdout)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def sim_console(driver: str, link: Path, banner: str) -> Iterator[subprocess.Popen[str]]:
    """`treadctl sim --driver DRIVER --link LINK`, once its first line has said `banner`, its
    second offered help and the link exists; SIGTERM when the block ends, a clean exit (0)."""
    with subprocess.Popen(
        [sys.executable, "-m", "treadctl", "sim", "--driver", driver, "--link", str(link)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert banner in proc.stdout.readline()
        assert "help" in proc.stdout.readline()
        assert link.is_symlink()
        yield proc
        proc.terminate()
        assert proc.wait(timeout=5) == 0  # SIGTERM is a clean exit


def command(proc: subprocess.Popen[str], text: str) -> str:
    """Type a console command; its reply (the treadmill's `belt:` reports skipped)."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(text + "\n")
    proc.stdin.flush()
    while True:
        reply = proc.stdout.readline()
        if not reply.startswith("belt:"):
            return reply
