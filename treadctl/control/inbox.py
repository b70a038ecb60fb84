"""The untrusted commands waiting for the controller: bounded, and `busy` when full.

Safety inputs and e-stops never wait here (Controller.submit applies them at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from treadctl.core.commands import Command, Result

QUEUE_SIZE = 64  # beyond it commands are answered `busy`
BUSY = Result.error("busy", "too many commands waiting; try again")


def settle(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():
        future.set_result(result)


class Inbox:
    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self._queue: asyncio.Queue[tuple[Command, asyncio.Future[Result]]] = asyncio.Queue(
            maxsize=size
        )

    def put(self, command: Command, future: asyncio.Future[Result]) -> None:
        """Queue `command`; its future resolves to the answer, or `busy` at once when full."""
        try:
            self._queue.put_nowait((command, future))
        except asyncio.QueueFull:
            future.set_result(BUSY)

    def empty(self) -> bool:
        return self._queue.empty()

    async def drain(self, answer: Callable[[Command], Awaitable[Result]]) -> None:
        """Answer every command waiting, in order, including those queued meanwhile."""
        while not self._queue.empty():
            command, future = self._queue.get_nowait()
            settle(future, await answer(command))
