"""Ending a test's background tasks: bounded, and loud when a task died or hangs."""

from __future__ import annotations

import asyncio
import io

TEARDOWN_S = 5.0


def task_stacks() -> str:
    """Every task's stack, as `print_stack` writes it: what a hung teardown waits on."""
    out = io.StringIO()
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        out.write(f"-- {task.get_name()} cancelling={task.cancelling()} done={task.done()}\n")
        task.print_stack(limit=8, file=out)
    return out.getvalue()


def died(task: asyncio.Task[object]) -> BaseException | None:
    """The exception a finished task ended with, None while it runs or if it was cancelled."""
    if not task.done() or task.cancelled():
        return None
    return task.exception()


async def finish(task: asyncio.Task[object], what: str, timeout: float = TEARDOWN_S) -> None:
    """Cancel `task` and wait for it within `timeout`.

    Fails the test when the task had already died with an exception (a crashed controller must
    not pass unseen), when it ends with one after the cancel, or when it does not end in time
    (with every task's stack, to show where it hangs)."""
    if (exc := died(task)) is not None:
        raise AssertionError(f"{what} died during the test: {exc!r}") from exc
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        stacks = task_stacks()
        task.cancel()  # a second request: a swallowed first one must not leak the task
        await asyncio.wait({task}, timeout=timeout)
        raise AssertionError(f"{what} did not end within {timeout:g} s of its cancel:\n{stacks}")
    if (exc := died(task)) is not None:
        raise AssertionError(f"{what} failed while it was cancelled: {exc!r}") from exc
