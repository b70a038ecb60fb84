"""Elapsed and remaining times as a clock shows them: `4:05`, `1:02:03`."""

from __future__ import annotations


def format_clock(seconds: float) -> str:
    """`m:ss` under an hour, `h:mm:ss` from an hour on; rounded to the second, never negative.

    The tables and live lines of the command line (`status --watch`, `sessions`, `programs
    show`, `demo`). Program files and their errors use `core.program.format_duration` (`1h 05m`).
    """
    hours, rest = divmod(max(0, round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
