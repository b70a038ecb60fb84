"""treadctl.tasks: bounded ends for tasks that may have lost a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from structlog.testing import capture_logs

from treadctl.tasks import RECANCEL_S, cancel_and_wait, checkpoint

Task = asyncio.Task[None]


async def _swallows_once(started: asyncio.Event) -> None:
    """Behaves like a task whose first cancellation 3.11's wait_for dropped."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def _never_ends(started: asyncio.Event, release: asyncio.Event) -> None:
    """Loses every cancellation until released."""
    started.set()
    while not release.is_set():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


async def _started(coro_fn: Callable[..., Coroutine[Any, Any, None]], *args: object) -> Task:
    started = asyncio.Event()
    task = asyncio.create_task(coro_fn(started, *args))
    await started.wait()
    return task


async def test_a_task_that_lost_its_cancellation_is_cancelled_again_after_the_patience() -> None:
    task = await _started(_swallows_once)
    t0 = time.monotonic()
    stuck = await cancel_and_wait([task], timeout_s=5, patience_s=0.3, what="test")
    took = time.monotonic() - t0
    assert stuck == set()
    assert task.cancelled()
    assert 0.3 <= took < 0.3 + 4 * RECANCEL_S, took  # not before its patience, soon after


async def test_a_task_that_never_ends_is_reported_not_waited_for() -> None:
    release = asyncio.Event()
    task = await _started(_never_ends, release)
    t0 = time.monotonic()
    with capture_logs() as logged:
        stuck = await cancel_and_wait([task], timeout_s=0.6, what="test")
    assert time.monotonic() - t0 < 0.6 + 0.5
    assert stuck == {task}
    assert [e["event"] for e in logged] == ["tasks did not end"]
    assert "_never_ends" in logged[0]["tasks"][0]  # where it hangs
    release.set()  # let it go, so that nothing leaks from the test
    assert await cancel_and_wait([task], timeout_s=1, what="test") == set()


async def test_errors_of_ended_tasks_are_retrieved_not_raised() -> None:
    async def fails() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("clean-up failed")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], timeout_s=1, what="test") == set()
    assert isinstance(task.exception(), RuntimeError)  # retrieved: no "never retrieved" warning


async def test_checkpoint_raises_a_pending_cancellation_only() -> None:
    checkpoint()  # nothing pending: nothing happens
    me = asyncio.current_task()
    assert me is not None
    me.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # swallowed, as 3.11's wait_for does
        await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        checkpoint()
    me.uncancel()
