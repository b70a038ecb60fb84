"""The event-loop stall monitor itself (tests/loopwatch.py, run by tests/conftest.py): it must
fail a test that blocks its loop, say where, and pass one that does not."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest

from loopwatch import LoopWatch

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
ARGS = (
    "-p",
    "asyncio",
    "-o",
    "asyncio_mode=auto",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)


def test_a_blocking_test_fails_with_where_it_blocked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TREADCTL_TEST_STALL_LOG", "TREADCTL_TEST_STALL_MS"):
        monkeypatch.delenv(name, raising=False)  # the outer session's, not this one's
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import asyncio
        import time

        import pytest

        async def test_blocks():
            await asyncio.sleep(0.01)
            time.sleep(0.35)  # the line the report must show
            await asyncio.sleep(0.01)

        async def test_clean():
            for _ in range(10):
                await asyncio.sleep(0.01)

        @pytest.mark.blocks_loop("on purpose")
        async def test_marked_and_blocking():
            time.sleep(0.25)

        @pytest.mark.blocks_loop("but it does not")
        async def test_marked_but_not_blocking():
            await asyncio.sleep(0.01)
        """
    )
    result = pytester.runpytest(*ARGS)
    # test_blocks and test_marked_but_not_blocking pass and error in their teardown
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_blocks*",
            "the event loop was blocked 1 time(s) for longer than*",
            "-- blocked * ms, at:",
            "*test_a_blocking_test_fails_with_where_it_blocked.py*, line *, in test_blocks",
            "*time.sleep(*the line the report must show",
        ]
    )
    result.stdout.fnmatch_lines(["*marked blocks_loop*but no stall was seen*"])
    result.stdout.fnmatch_lines(["event loop: largest stall * ms over 2 tests*"])


@pytest.mark.blocks_loop("the stall the watch under test must see")
async def test_waiting_is_not_a_stall_and_the_watch_comes_off() -> None:
    loop = asyncio.get_running_loop()
    before = vars(loop).get("_run_once")  # the watch of tests/conftest.py
    watch = LoopWatch(loop, threshold_s=0.1)
    try:
        await asyncio.sleep(0.3)  # idle in the selector: not counted
        time.sleep(0.25)  # the stall under test
        cycles: list[list[object]] = [[] for _ in range(100_000)]
        for cycle in cycles:
            cycle.append(cycle)
        del cycles  # garbage only a collection frees: it takes milliseconds, not microseconds
        gc.collect()  # and a collection in the same iteration
        await asyncio.sleep(0)
    finally:
        watch.close()
    assert len(watch.stalls) == 1, watch.stalls
    assert watch.stalls[0].seconds >= 0.25
    assert watch.largest == watch.stalls[0]
    assert "time.sleep(0.25)  # the stall under test" in watch.stalls[0].stack
    assert 0 < watch.stalls[0].gc_s < watch.stalls[0].seconds
    assert "[garbage collection " in watch.stalls[0].where()
    assert vars(loop).get("_run_once") is before  # put back as it was
