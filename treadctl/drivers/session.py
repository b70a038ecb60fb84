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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Generic, TypedDict, TypeVar, Unpack

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

    def turn(self, *, moves: bool = False) -> _Turn:
        """Hold the link for a run of exchanges; `moves`: refused while halted."""
        return _Turn(self, moves)

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

    async def exchange_all(
        self,
        steps: Sequence[tuple[bytes, Parser[T]]],
        *,
        refused: Callable[[T], bool] = lambda _answer: False,
    ) -> list[T]:
        """Read-only requests in order, each written once the answer before it is complete,
        within the caller's turn; stops after an answer `refused` says is a refusal.

        The same exchanges as `exchange` one after the other (one request in flight, each its
        own timeout, the same misses and retries), run in the link's reader callback: an answer
        completes and the next request goes out in the same turn of the event loop, and the
        task wakes once for the run instead of once per answer (decisions §30). A request
        without a valid answer is tried again, and the rest read, the ordinary way."""
        if not self.lock.locked():
            raise RuntimeError("Session.exchange_all outside a turn")  # pragma: no cover
        with self._translated():
            self._discard_stale()
            chain = _Chain(self, steps, refused)
            self.link.route(chain)
            try:
                chain.send()
                await chain.finished
            finally:
                self.link.route(None)
                chain.close()
            answers = chain.answers
            if chain.error is None:
                return answers
            if isinstance(chain.error, serial.LinkLost):
                raise chain.error
            request, parse = steps[len(answers)]
            await self._after_miss(request, chain.error, last=self.retries == 0)
            answers.append(await self._exchange(request, parse, moves=False, first=1))
            for request, parse in steps[len(answers) :]:
                if refused(answers[-1]):
                    break
                answers.append(await self._exchange(request, parse, moves=False))
            return answers

    def _discard_stale(self) -> None:
        stale = self.link.discard_input()
        if stale:
            log.debug("discarded stale input", driver=self.name, data=stale.hex(" "))

    async def _exchange(
        self, request: bytes, parse: Parser[T], *, moves: bool, first: int = 0
    ) -> T:
        """`first`: the attempts already made (exchange_all's chained one)."""
        if first == 0:
            self._discard_stale()
        for attempt in range(first, self.retries + 1):
            self.check_halted(moves=moves)  # an e-stop written meanwhile (before a retry)
            self.link.write(request)
            try:
                answer = await self._await(request, parse)
            except (TimedOut, CodecError) as exc:
                await self._after_miss(request, exc, last=attempt == self.retries)
                continue
            self._answered()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _after_miss(self, request: bytes, exc: DriverError, *, last: bool) -> None:
        """Count the miss (LinkLost at max_misses); the last try's error is raised."""
        self._missed(request, exc)
        if last:
            raise exc
        await asyncio.sleep(0.02)  # let the rest of a noise burst arrive, then drop it
        self.link.discard_input()

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
            answer = self._take(buf, parse)
            if answer is not None:
                return answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._timed_out(request, buf)
            buf += await self.link.read(remaining)

    def _take(self, buf: bytearray, parse: Parser[T]) -> T | None:
        """The answer at the start of `buf`, stray answers before it dropped; None: more
        bytes needed. Bytes after the answer are logged and left (the caller drops them)."""
        while True:
            try:
                answer, used = parse(bytes(buf))
            except CodecError as exc:
                raise CodecError(f"{exc} (received {bytes(buf).hex(' ')})") from None
            if answer is None and used:
                log.debug("stray answer skipped", driver=self.name, data=bytes(buf[:used]).hex(" "))
                del buf[:used]
                continue
            if answer is not None and used < len(buf):
                log.debug("extra bytes after answer", data=bytes(buf[used:]).hex(" "))
            return answer

    def _timed_out(self, request: bytes, buf: bytearray) -> TimedOut:
        return TimedOut(
            f"{self.name}: no complete answer to {request.hex(' ')} within "
            f"{self.response_timeout_s} s (received {bytes(buf).hex(' ') or 'nothing'})"
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """The transport's LinkLost becomes the drivers' (a DriverError), message kept."""
        try:
            yield
        except serial.LinkLost as exc:
            if isinstance(exc, LinkLost):
                raise
            raise LinkLost(str(exc)) from exc


class _Turn:
    """Session.turn: a class rather than a generator context manager, as it is entered at every
    poll (an async generator and its wrapper cost more than the lock)."""

    __slots__ = ("_moves", "_session")

    def __init__(self, session: Session, moves: bool) -> None:
        self._session = session
        self._moves = moves

    async def __aenter__(self) -> None:
        await self._session.lock.acquire()
        try:
            self._session.check_halted(moves=self._moves)
        except BaseException:
            self._session.lock.release()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        self._session.lock.release()


class _Chain(Generic[T]):
    """exchange_all's requests, run from the link's reader callback (a serial.Receiver)."""

    def __init__(
        self,
        session: Session,
        steps: Sequence[tuple[bytes, Parser[T]]],
        refused: Callable[[T], bool],
    ) -> None:
        self.session = session
        self.steps = steps
        self.refused = refused
        self.loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.answers: list[T] = []
        # The first request that failed, or the link's loss; the task handles it.
        self.error: DriverError | serial.LinkLost | None = None
        self._buf = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def send(self) -> None:
        """The next request on the wire, its own timeout started."""
        request = self.steps[len(self.answers)][0]
        self.session.link.write(request)
        timeout = self.session.response_timeout_s
        self._timer = self.loop.call_at(self.loop.time() + timeout, self._timeout)

    def received(self, data: bytes) -> None:
        if self.finished.done():
            return  # after the run, before the task took the link back: late, dropped
        self._buf += data
        try:
            answer = self.session._take(self._buf, self.steps[len(self.answers)][1])  # noqa: SLF001
        except CodecError as exc:
            self._fail(exc)
            return
        if answer is None:
            return
        self._cancel_timer()
        self._buf.clear()  # bytes after the answer: no request of ours asked for them
        self.answers.append(answer)
        self.session._answered()  # noqa: SLF001
        if len(self.answers) == len(self.steps) or self.refused(answer):
            self.finished.set_result(None)
            return
        try:
            self.send()
        except serial.LinkLost as exc:
            self._fail(exc)

    def ended(self) -> None:
        self._fail(self.session.link.lost() or serial.LinkLost("serial link closed"))

    def close(self) -> None:
        self._cancel_timer()

    def _timeout(self) -> None:
        request = self.steps[len(self.answers)][0]
        self._fail(self.session._timed_out(request, self._buf))  # noqa: SLF001

    def _fail(self, error: DriverError | serial.LinkLost) -> None:
        self._cancel_timer()
        if not self.finished.done():
            self.error = error
            self.finished.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
