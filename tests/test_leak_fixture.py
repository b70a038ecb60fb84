"""The leaked-task fixture itself: it must fail a leaking test and pass a clean one."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


def test_leaking_test_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import asyncio

        async def test_leaks():
            asyncio.create_task(asyncio.sleep(60), name="forgotten-poller")

        async def test_clean():
            task = asyncio.create_task(asyncio.sleep(0))
            await task
        """
    )
    result = pytester.runpytest(
        "-p",
        "asyncio",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    # the leaking test itself passes; its teardown is the error
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*leaked 1 asyncio task(s): forgotten-poller*"])
