"""An asyncio event loop on virtual time.

`time()` is a number the loop owns. When the loop would block in `select(timeout)`, the
selector returns at once and moves virtual time forward by `timeout`: the loop jumps straight
to its next timer. So `asyncio.sleep`, `asyncio.timeout_at` and the controller's tick deadline
cost no real time, and the order of everything that happens is fixed by the program alone
(timers fire in `when` order, ready callbacks in FIFO order), never by the machine's load.

Nothing here does I/O: the selector registers the loop's self-pipe (asyncio needs one) but
never polls it, so `call_soon_threadsafe` from another thread is not supported.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike


# Loop turns at one virtual instant before the world counts as busy-looping: a correct
# controller takes a handful per instant; a task that keeps rescheduling itself never ends.
SPIN_LIMIT = 200_000


class StalledError(RuntimeError):
    """Virtual time cannot move on: nothing is ready and no timer is pending (the world would
    wait forever), or the loop keeps turning at one instant (a busy loop)."""


class _InstantSelector(selectors.BaseSelector):
    def __init__(self, advance: Callable[[float], None]) -> None:
        self._advance = advance
        self._keys: dict[FileDescriptorLike, selectors.SelectorKey] = {}
        self._spins = 0

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise StalledError("no callback ready and no timer pending")
        if timeout > 0:
            self._spins = 0
            self._advance(timeout)
        else:
            self._spins += 1
            if self._spins > SPIN_LIMIT:
                raise StalledError(f"{SPIN_LIMIT} loop turns without virtual time moving on")
        return []

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return MappingProxyType(self._keys)


AnswerHook = Callable[[Any], None]


class ObservedFuture(asyncio.Future[Any]):
    """A future that calls `on_result` with its result at the very moment it is set, before
    anything else runs (a done-callback would run later, after the setter went on)."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop, on_result: AnswerHook) -> None:
        super().__init__(loop=loop)
        self._on_result = on_result

    def set_result(self, result: Any) -> None:
        self._on_result(result)
        super().set_result(result)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """See the module docstring. `observe_next_future()` makes the next `create_future()`
    return an ObservedFuture (the explorer uses it on the future `Controller.submit()` makes)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._next_hook: AnswerHook | None = None
        super().__init__(selector=_InstantSelector(self._advance))

    def time(self) -> float:
        return self._now

    def _advance(self, seconds: float) -> None:
        self._now += seconds

    def observe_next_future(self, on_result: AnswerHook | None) -> None:
        self._next_hook = on_result

    def create_future(self) -> asyncio.Future[Any]:
        hook, self._next_hook = self._next_hook, None
        if hook is None:
            return super().create_future()
        return ObservedFuture(loop=self, on_result=hook)
