"""Logging: JSON lines off a terminal, levels honoured, library (stdlib) logs rendered the same."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import structlog

from treadctl import logs


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    try:
        logs.configure("INFO", stream=out)
        structlog.get_logger("treadctl.test").info("belt stopped", speed_kmh=0.0)
        logging.getLogger("some.library").warning("from the stdlib")
        structlog.get_logger("treadctl.test").debug("hidden at INFO")
    finally:
        logs.configure("WARNING", json=True)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["belt stopped", "from the stdlib"]
    assert lines[0]["speed_kmh"] == 0.0
    assert lines[0]["level"] == "info"
    assert lines[1]["logger"] == "some.library"
    assert "timestamp" in lines[0]


def test_console_lines_on_a_terminal() -> None:
    out = FakeTty()
    try:
        logs.configure("DEBUG", stream=out)
        structlog.get_logger("treadctl.test").debug("hello", port="/dev/ttyUSB0")
    finally:
        logs.configure("WARNING", json=True)
    text = out.getvalue()
    assert "hello" in text
    assert "port" in text
    assert not text.lstrip().startswith("{")


SECRET = "s3cret-tr3adctl-4b9f"


def _fail_with_a_secret_in_scope() -> None:
    password = SECRET  # a local, as in a frame that read a password file
    settings = {"mqtt": {"password": password}}
    raise RuntimeError("cannot open serial port /dev/ttyUSB9: " + str(len(settings)))


def _log_a_failure() -> None:
    try:
        _fail_with_a_secret_in_scope()
    except RuntimeError:
        structlog.get_logger("treadctl.test").exception("treadctl stopped by an error")


def _logged_failure(out: io.StringIO) -> str:
    """What logging a failure with a secret in scope writes to `out`."""
    try:
        logs.configure("INFO", stream=out)
        _log_a_failure()
    finally:
        logs.configure("WARNING", json=True)
    return out.getvalue()


def test_json_traceback_without_locals() -> None:
    text = _logged_failure(io.StringIO())
    assert SECRET not in text
    (line,) = [json.loads(raw) for raw in text.splitlines()]
    (exc,) = line["exception"]
    assert exc["exc_type"] == "RuntimeError"
    assert "/dev/ttyUSB9" in exc["exc_value"]
    assert [f["name"] for f in exc["frames"]] == ["_log_a_failure", "_fail_with_a_secret_in_scope"]
    assert all("locals" not in f for f in exc["frames"])


def test_console_traceback_without_locals() -> None:
    text = _logged_failure(FakeTty())
    assert SECRET not in text
    assert "Traceback (most recent call last)" in text
    assert "_fail_with_a_secret_in_scope" in text
    assert "RuntimeError: cannot open serial port /dev/ttyUSB9" in text


def test_daemon_failing_to_open_its_port_logs_no_secret(tmp_path: Path) -> None:
    """The real daemon, a port that does not exist and the MQTT password in its environment:
    the error line names the port and the exception, and carries neither locals nor the secret."""
    config = tmp_path / "treadctl.toml"
    config.write_text(
        '[device]\nid = "logtest"\ndriver = "woodway"\nport = "/dev/treadctl-no-such-port"\n'
        '[mqtt]\nhost = "127.0.0.1"\nport = 9\nusername = "clinic"\n'
        f'[storage]\npath = "{tmp_path / "sessions.db"}"\n'
    )
    env = os.environ | {"TREADCTL_MQTT__PASSWORD": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "treadctl", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert SECRET not in output
    errors = [
        line
        for line in map(json.loads, done.stderr.splitlines())
        if line["level"] == "error" and "exception" in line
    ]
    assert errors, output
    for line in errors:
        assert line["exception"][0]["exc_type"] == "LinkLost"
        assert "/dev/treadctl-no-such-port" in line["exception"][0]["exc_value"]
        assert all("locals" not in f for exc in line["exception"] for f in exc["frames"])
