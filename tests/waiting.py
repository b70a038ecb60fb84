"""Waiting in a test: for a condition, with a bound, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    check: Callable[[], bool],
    *,
    timeout: float = 5.0,
    what: str = "the condition",
    step: float = 0.01,
) -> float:
    """Seconds until `check()` held, looking every `step`; fails the test naming `what` after
    `timeout`."""
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(step)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None
    return time.monotonic() - t0
