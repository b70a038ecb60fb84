"""One request, one answer, over one serial link: the part every framed protocol shares.

A request gets `response_timeout_s` for a complete answer and `retries` more tries; `max_misses`
requests in a row without a valid answer mean the link is lost (a silent or babbling device is as
gone as an unplugged one). The caller holds its own lock: one request in flight at a time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TypeVar

import structlog

from treadctl.drivers.errors import CodecError, LinkLost, TimedOut
from treadctl.drivers.transport import SerialLink, SerialSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Parses the answer at the start of the buffer: (answer, bytes used); (None, 0) asks for more
# bytes; (None, n) drops n bytes of a stray answer (to a request written on the e-stop path).
Parser = Callable[[bytes], tuple[T | None, int]]


class Session:
    def __init__(
        self,
        name: str,
        settings: SerialSettings,
        *,
        response_timeout_s: float,
        retries: int = 1,
        max_misses: int = 3,
    ) -> None:
        self.name = name
        self.settings = settings
        self.response_timeout_s = response_timeout_s
        self.retries = retries
        self.max_misses = max_misses
        self.link = SerialLink(settings)
        self.misses = 0
        self.last_tx = -math.inf  # loop time of the last request written

    async def open(self) -> None:
        self.link = SerialLink(self.settings)  # a fresh link: a lost one stays lost
        await self.link.open()
        self.misses = 0

    async def close(self) -> None:
        await self.link.close()

    def write_now(self, data: bytes) -> None:
        """On the wire at once, whatever is in flight (the e-stop path). Raises LinkLost."""
        self.link.write(data)
        self.last_tx = asyncio.get_running_loop().time()

    async def exchange(self, request: bytes, parse: Parser[T]) -> T:
        """Send `request` and return its parsed answer; the caller holds the lock."""
        loop = asyncio.get_running_loop()
        stale = self.link.discard_input()
        if stale:
            log.debug("discarded stale input", driver=self.name, data=stale.hex(" "))
        for attempt in range(self.retries + 1):
            self.link.write(request)
            self.last_tx = loop.time()
            try:
                answer = await self._await(request, parse)
            except (TimedOut, CodecError) as exc:
                self.misses += 1
                log.info(
                    "no valid answer",
                    driver=self.name,
                    request=request.hex(" "),
                    error=str(exc),
                    misses=self.misses,
                )
                if self.misses >= self.max_misses:
                    raise LinkLost(
                        f"{self.name} on {self.settings.port}: "
                        f"no valid answer to {self.misses} requests"
                    ) from exc
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.02)  # let the rest of a noise burst arrive, then drop it
                self.link.discard_input()
                continue
            self.misses = 0
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _await(self, request: bytes, parse: Parser[T]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.response_timeout_s
        buf = bytearray()
        while True:
            try:
                answer, used = parse(bytes(buf))
            except CodecError as exc:
                raise CodecError(f"{exc} (received {bytes(buf).hex(' ')})") from None
            if answer is None and used:
                log.debug("stray answer skipped", driver=self.name, data=bytes(buf[:used]).hex(" "))
                del buf[:used]
                continue
            if answer is not None:
                if used < len(buf):
                    log.debug("extra bytes after answer", data=bytes(buf[used:]).hex(" "))
                return answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimedOut(
                    f"{self.name}: no complete answer to {request.hex(' ')} within "
                    f"{self.response_timeout_s} s (received {bytes(buf).hex(' ') or 'nothing'})"
                )
            buf += await self.link.read(remaining)
