"""Ending asyncio tasks in bounded time, also on Python 3.11.

Python 3.11's `asyncio.wait_for` drops a cancellation that arrives in the same loop iteration as
the result it waits for (gh-86296, fixed in 3.12). aiomqtt waits for CONNACK, SUBACK, PUBACK and
the disconnect with it, so a task cancelled at that moment carries on with `cancelling()` still
1 and no CancelledError in flight, and whoever awaits its end waits for ever. Two defences:

- a loop calls `checkpoint()` (or awaits through `checked()`) after every await that can
  swallow a cancellation, so a swallowed request is raised again at once;
- an owner ends its tasks with `cancel_and_wait()`: bounded, cancelling again what did not end,
  logging what is still stuck instead of waiting for it.

`checkpoint()` trusts the current task's count of cancel requests, so it must run in a task that
nothing cancels and then "uncancels" without ending it: no TaskGroup around the code in the
same task (3.11's TaskGroup leaves a request behind after a child's error). `asyncio.timeout()`
balances its own requests and is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

RECANCEL_S = 0.25  # how often a task that has not ended is cancelled again


def checkpoint() -> None:
    """Raise CancelledError if the current task has a cancel request pending: one that 3.11's
    `wait_for` swallowed (nothing else leaves a request pending without an exception)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def checked(call: Awaitable[T]) -> T:
    """`await call`, then `checkpoint()`: for calls that wait with 3.11's `wait_for` (aiomqtt's
    connect, subscribe, publish and disconnect)."""
    result = await call
    checkpoint()
    return result


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    *,
    timeout_s: float,
    patience_s: float = RECANCEL_S,
    what: str,
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait at most `timeout_s` for them to end.

    A task still running after `patience_s` (the time its own clean-up may take) is cancelled
    again every RECANCEL_S, since its first request may have been swallowed. What is still
    running at the end is logged with its stack and returned, not waited for. Errors of the
    tasks that ended are retrieved (so asyncio does not report them as never retrieved), not
    raised: the caller is shutting them down.
    """
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    recancel_at = loop.time() + patience_s
    try:
        while pending and (now := loop.time()) < deadline:
            if now >= recancel_at:
                for task in pending:
                    task.cancel()
                recancel_at = now + RECANCEL_S
            done, pending = await asyncio.wait(pending, timeout=min(deadline, recancel_at) - now)
            _retrieve(done)
    except asyncio.CancelledError:
        for task in pending:  # our owner gives up waiting: leave nothing uncancelled behind
            task.cancel()
        raise
    if pending:
        log.error("tasks did not end", what=what, timeout_s=timeout_s, tasks=stacks(pending))
    return pending


def _retrieve(done: Iterable[asyncio.Task[Any]]) -> None:
    for task in done:
        if not task.cancelled():
            task.exception()


def stacks(tasks: Iterable[asyncio.Task[Any]]) -> list[str]:
    """Where each task waits, as text for a log line: the whole chain of awaits down to the
    innermost one (`Task.print_stack` shows only the outermost frame of a suspended task)."""
    return [_await_chain(task) for task in tasks]


def _await_chain(task: asyncio.Task[Any]) -> str:
    lines = [repr(task)]
    awaited: object = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:  # a future, or a finished coroutine: the end of the chain
            lines.append(f"  awaiting {awaited!r}")
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "\n".join(lines)
