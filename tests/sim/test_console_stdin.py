"""`treadctl sim` whatever its stdin is: /dev/null (systemd's default), a regular file, a closed
descriptor or a pipe. Without a console it runs until a signal, and logs no error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SIM = [sys.executable, "-m", "treadctl", "sim"]


def run_until_signal(args: list[str], **stdin: object) -> tuple[int, str]:
    """Start the simulator, wait for its first belt (or box) report and a little longer for
    anything the loop would log about stdin, then SIGTERM it: (exit status, all its output)."""
    with subprocess.Popen(
        [*SIM, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **stdin,  # type: ignore[call-overload]
    ) as proc:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(("belt: ", "type 'help'")) and any(
                x.startswith("simulated") for x in lines
            ):
                break
        time.sleep(0.5)  # the loop adds stdin's reader in a callback after the first await
        assert proc.poll() is None, "".join(lines)  # still running: it reads no commands
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()  # to the end (not communicate(): it would skip what is buffered)
        proc.wait(timeout=10)
    return proc.returncode, "".join(lines) + rest


def devnull() -> dict[str, object]:
    return {"stdin": subprocess.DEVNULL}


def closed() -> dict[str, object]:
    return {"stdin": subprocess.DEVNULL, "preexec_fn": lambda: os.close(0)}


@pytest.mark.parametrize("driver", ["woodway", "estop-box"])
@pytest.mark.parametrize("stdin", [devnull, closed], ids=["devnull", "closed"])
def test_no_console_no_error(
    tmp_path: Path, driver: str, stdin: Callable[[], dict[str, object]]
) -> None:
    status, output = run_until_signal(
        ["--driver", driver, "--link", str(tmp_path / "link")], **stdin()
    )
    assert status == 0, output
    assert "simulated" in output
    assert '"level": "error"' not in output
    assert "Exception" not in output
    assert "Traceback" not in output


def test_regular_file_is_no_console(tmp_path: Path) -> None:
    commands = tmp_path / "commands"
    commands.write_text("quit\n")  # never read: a file is not a console
    with commands.open() as stdin:
        status, output = run_until_signal(
            ["--driver", "woodway", "--link", str(tmp_path / "link")], stdin=stdin
        )
    assert status == 0, output
    assert '"level": "error"' not in output
    assert "Traceback" not in output


def test_pipe_is_a_console(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SIM, "--driver", "woodway", "--link", str(tmp_path / "link")],
        input="status\nquit\n",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped, forward 0.00 km/h" in done.stdout
    assert "Traceback" not in done.stderr
