"""The one clock formatter of the command line's tables and live lines."""

from __future__ import annotations

import pytest

from treadctl.core.durations import format_clock


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (4.4, "0:04"),
        (59.6, "1:00"),
        (245, "4:05"),
        (3599.4, "59:59"),
        (3600, "1:00:00"),
        (3723, "1:02:03"),
        (-3, "0:00"),  # a sample stamped a moment before its session's start
    ],
)
def test_format_clock(seconds: float, text: str) -> None:
    assert format_clock(seconds) == text
