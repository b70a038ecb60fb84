"""One request, one answer, over one serial link: the part every driver's protocol shares.

The session owns what every driver needs around an exchange: the lock (one request in flight
at a time), the halted gate (a command that would move the belt is refused once an emergency
stop is in effect, checked when the lock is taken and again before every retry), the timeout,
the retries and the miss count. A request gets `response_timeout_s` for a complete answer and
`retries` more tries; `max_misses` requests in a row without a valid answer mean the link is
lost (a silent or babbling device is as gone as an unplugged one).

Late answers. None of the protocols numbers its requests, so the answer to a timed-out
request may arrive during the next one and look like its answer. The session keeps the miss
count honest by counting answers: each request without a valid answer may still be answered
(for `max_misses` × `response_timeout_s`), and the next answer received pays off the oldest of
those debts. That answer is still used (the protocols answer in order, and it answers the same
question), but only an answer received while nothing is owed resets the miss count: a device
that answers everything late runs up its misses and is lost on time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypedDict, TypeVar, Unpack

import structlog

from treadctl.drivers.errors import CodecError, DriverError, LinkLost, Rejected, TimedOut
from treadctl.transport import serial
from treadctl.transport.serial import SerialLink, SerialSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Parses the answer at the start of the buffer: (answer, bytes used); (None, 0) asks for more
# bytes; (None, n) drops n bytes of a stray answer (to a request written on the e-stop path).
Parser = Callable[[bytes], tuple[T | None, int]]

RESPONSE_TIMEOUT_S = 0.25  # device.response_timeout_s
RETRIES = 1
MAX_MISSES = 3


class SessionOptions(TypedDict, total=False):
    """What every driver's constructor passes through to its session."""

    response_timeout_s: float
    retries: int
    max_misses: int


class Session:
    def __init__(
        self,
        name: str,
        settings: SerialSettings,
        *,
        halted: Callable[[], bool],
        **options: Unpack[SessionOptions],
    ) -> None:
        """`halted`: the owner's emergency-stop flag (Driver.halted), read at every gate."""
        self.name = name
        self.settings = settings
        self.response_timeout_s = options.get("response_timeout_s", RESPONSE_TIMEOUT_S)
        self.retries = options.get("retries", RETRIES)
        self.max_misses = options.get("max_misses", MAX_MISSES)
        self.link = SerialLink(settings)
        self.lock = asyncio.Lock()
        self.misses = 0
        self._halted = halted
        # Loop times until which the answers of requests without a valid answer may still come.
        self._owed: collections.deque[float] = collections.deque()

    async def open(self, first: Callable[[], Awaitable[object]]) -> None:
        """Open a fresh link (a lost one stays lost), then run the driver's `first` command
        (the stop every driver opens with); a link whose first command fails is closed."""
        self.link = SerialLink(self.settings)
        with self._translated():
            await self.link.open()
        self.misses = 0
        self._owed.clear()
        try:
            await first()
        except DriverError:
            await self.link.close()
            raise

    async def close(self) -> None:
        await self.link.close()

    def write_now(self, data: bytes) -> None:
        """On the wire at once, whatever is in flight (the e-stop path). Raises LinkLost.

        `_translated` written out: a generator context manager is four Python frames before
        the byte (bench/estop_path.py)."""
        try:
            self.link.write(data)
        except serial.LinkLost as exc:
            if isinstance(exc, LinkLost):
                raise
            raise LinkLost(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def turn(self, *, moves: bool = False) -> AsyncIterator[None]:
        """Hold the link for a run of exchanges; `moves`: refused while halted."""
        async with self.lock:
            self.check_halted(moves=moves)
            yield

    def check_halted(self, *, moves: bool = True) -> None:
        if moves and self._halted():
            raise Rejected(
                f"{self.name}: emergency stop in effect, the belt may not move", code="halted"
            )

    async def exchange(self, request: bytes, parse: Parser[T], *, moves: bool = False) -> T:
        """Send `request` and return its parsed answer, within the caller's turn."""
        if not self.lock.locked():
            raise RuntimeError("Session.exchange outside a turn")  # pragma: no cover
        with self._translated():
            return await self._exchange(request, parse, moves=moves)

    async def _exchange(self, request: bytes, parse: Parser[T], *, moves: bool) -> T:
        stale = self.link.discard_input()
        if stale:
            log.debug("discarded stale input", driver=self.name, data=stale.hex(" "))
        for attempt in range(self.retries + 1):
            self.check_halted(moves=moves)  # an e-stop written meanwhile (before a retry)
            self.link.write(request)
            try:
                answer = await self._await(request, parse)
            except (TimedOut, CodecError) as exc:
                self._missed(request, exc)
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.02)  # let the rest of a noise burst arrive, then drop it
                self.link.discard_input()
                continue
            self._answered()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _missed(self, request: bytes, exc: DriverError) -> None:
        now = asyncio.get_running_loop().time()
        self.misses += 1
        self._owed.append(now + self.max_misses * self.response_timeout_s)
        log.info(
            "no valid answer",
            driver=self.name,
            request=request.hex(" "),
            error=str(exc),
            misses=self.misses,
        )
        if self.misses >= self.max_misses:
            raise LinkLost(
                f"{self.name} on {self.settings.port}: no valid answer to {self.misses} requests"
            ) from exc

    def _answered(self) -> None:
        now = asyncio.get_running_loop().time()
        while self._owed and self._owed[0] <= now:
            self._owed.popleft()  # too late to come now: forgotten
        if self._owed:
            # Perhaps the late answer to an earlier request: no proof the device keeps time.
            self._owed.popleft()
            log.debug("answer while another was owed", driver=self.name, misses=self.misses)
            return
        self.misses = 0

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

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """The transport's LinkLost becomes the drivers' (a DriverError), message kept."""
        try:
            yield
        except serial.LinkLost as exc:
            if isinstance(exc, LinkLost):
                raise
            raise LinkLost(str(exc)) from exc
