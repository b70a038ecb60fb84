"""`treadctl demo` as a user runs it: a real subprocess with nothing set up, exit 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cli_process import run_treadctl

DASHBOARD = re.compile(r"dashboard: (http://127\.0\.0\.1:\d+)/ \(log in as (\S+), password (\S+)\)")


def _dashboard_tiles(base: str, user: str, password: str) -> list[dict[str, Any]]:
    """Log in to the demo's dashboard as its printed line says, and read its treadmills."""
    login = urllib.request.Request(
        f"{base}/api/login",
        data=json.dumps({"username": user, "password": password}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(login, timeout=30) as answer:
        cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
    tiles = urllib.request.Request(f"{base}/api/treadmills", headers={"Cookie": cookie})
    with urllib.request.urlopen(tiles, timeout=30) as answer:
        found: list[dict[str, Any]] = json.load(answer)["treadmills"]
    return found


@pytest.mark.timeout(180)  # a subprocess of ~20 s, longer on a loaded machine
def test_demo_runs_a_backward_program_end_to_end(tmp_path: Path) -> None:
    chart = tmp_path / "demo.png"
    args = ["demo", "--speedup", "100", "--chart", str(chart)]
    with subprocess.Popen(
        [sys.executable, "-m", "treadctl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        login: tuple[str | Any, ...] | None = None
        tiles: list[dict[str, Any]] | None = None
        for line in proc.stdout:  # bounded by the test's timeout; the demo ends by itself
            lines.append(line)
            if found := DASHBOARD.search(line):
                login = found.groups()
            elif login and tiles is None and line.startswith("["):  # walking: the daemon is up
                tiles = _dashboard_tiles(*login)
        stderr = proc.stderr.read() if proc.stderr else ""
        returncode = proc.wait(timeout=90)
    out = "".join(lines)
    assert returncode == 0, (out, stderr)
    # it opens on the dashboard: its address and login printed, the treadmill there
    assert tiles is not None, out
    assert [t["device"] for t in tiles] == ["demo"], tiles
    assert "embedded broker on 127.0.0.1:" in out  # no broker needed
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert any("walk backward, belt reverse" in line for line in progress), out
    speeds = [float(m) for m in re.findall(r"([0-9.]+) km/h", "\n".join(progress))]
    assert 0 < max(speeds) <= 2.0, speeds  # moved, never above the program's speed
    assert "alghadir2019-knee-oa (finished)" in out
    reverse = re.search(r"walked backward\s+(\d+):(\d+)", out)
    assert reverse is not None
    assert int(reverse[1]) * 60 + int(reverse[2]) > 0
    assert "demo finished: belt stopped" in out
    assert "Traceback" not in stderr
    # the session was recorded and charted
    assert f"chart of the session: {chart}" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    show = re.search(r"treadctl sessions show (\S+) --db (\S+)", out)
    assert show is not None
    shown = run_treadctl("sessions", "show", show[1], "--db", show[2], timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "alghadir2019-knee-oa" in shown.stdout
    assert "finished" in shown.stdout
    # walked by the demo's person, whose record reached the clinic service and its report
    assert "walking: demo-walker (a pseudonym)" in out
    report = re.search(r"demo-walker's report: (\S+\.html)", out)
    assert report is not None, out
    page = Path(report[1]).read_text()
    assert "demo-walker" in page
    assert '<table id="sessions">' in page


def test_demo_with_an_unknown_program_is_a_usage_error() -> None:
    result = run_treadctl("demo", "--program", "no-such-program", timeout=30)
    assert result.returncode == 2  # docs/cli.md: 2 is bad usage
    assert "no-such-program" in result.stderr
