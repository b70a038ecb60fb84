"""`treadctl demo` as a user runs it: a real subprocess with nothing set up, exit 0."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_process import run_treadctl


@pytest.mark.timeout(180)  # a subprocess of ~20 s, longer on a loaded machine
def test_demo_runs_a_backward_program_end_to_end(tmp_path: Path) -> None:
    chart = tmp_path / "demo.png"
    result = run_treadctl("demo", "--speedup", "100", "--chart", str(chart), timeout=90)
    out = result.stdout
    assert result.returncode == 0, (out, result.stderr)
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
    assert "Traceback" not in result.stderr
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
