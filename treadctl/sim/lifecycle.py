"""The shape every simulator shares: `start()` and `stop()`, and `async with sim:` around them."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Simulator(abc.ABC):
    """`async with SomeSimulator(...) as sim:` starts it and stops it however the block ends."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
