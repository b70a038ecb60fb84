"""Logging: JSON lines off a terminal, levels honoured, library (stdlib) logs rendered the same."""

from __future__ import annotations

import io
import json
import logging

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
