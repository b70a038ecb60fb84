"""systemd's side of the notify protocol, for tests and benches: the AF_UNIX datagram socket a
service finds in NOTIFY_SOCKET, read by a thread that stamps each datagram on arrival (so it
keeps time while the service's event loop, or the caller's, is blocked).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class NotifySocket:
    """A bound datagram socket: (monotonic time, fields) per datagram received."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[tuple[float, list[str]]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="treadctl.sim.notify", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return  # closed
            if not data:
                return  # shut down
            with self._cond:
                self.received.append((time.monotonic(), data.decode().split("\n")))
                self._cond.notify_all()

    def datagrams(self, since: float = 0.0) -> list[tuple[float, list[str]]]:
        with self._cond:
            return [(at, fields) for at, fields in self.received if at >= since]

    def times(self, item: str, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [at for at, fields in self.datagrams(since) if item in fields and at <= until]

    def statuses(self) -> list[str]:
        return [f[7:] for _, fields in self.datagrams() for f in fields if f.startswith("STATUS=")]

    def first(self, check: Callable[[str], bool], since: float = 0.0) -> float | None:
        """The time of the first datagram after `since` with a field passing check(field)."""
        return next(
            (at for at, fields in self.datagrams(since) if any(check(f) for f in fields)), None
        )

    async def wait_for(
        self, check: Callable[[str], bool], timeout: float = 10.0, since: float = 0.0
    ) -> float:
        """first(), waited for without blocking the event loop."""
        async with asyncio.timeout(timeout):
            # the datagrams arrive on a thread: nothing to await but time
            while (at := self.first(check, since)) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return at

    def block_until(self, item: str, since: float, timeout: float = 30.0) -> float:
        """The time of the first `item` (e.g. READY=1) after `since`, blocking: outside an
        event loop only."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.times(item, since), timeout):
                raise TimeoutError(f"no {item} within {timeout} s")
            return self.times(item, since)[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(2)


@contextlib.contextmanager
def notify_socket(directory: Path) -> Iterator[NotifySocket]:
    """A NotifySocket at `directory`/notify, closed on exit."""
    ns = NotifySocket(directory / "notify")
    try:
        yield ns
    finally:
        ns.close()
