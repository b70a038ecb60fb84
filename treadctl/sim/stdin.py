"""Commands typed on stdin for the simulators' consoles, when stdin can carry any: the loop both
consoles (`treadctl sim`, `treadctl sim --driver estop-box`) run until `quit` or a signal."""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Protocol

Apply = Callable[[str], str | None]  # one command line -> its reply, or None to quit
SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def open_stdin() -> asyncio.StreamReader | None:
    """A reader of stdin, or None when the event loop cannot watch it: stdin closed, a regular
    file, or /dev/null (as under systemd, whose default is StandardInput=null).

    epoll refuses files and /dev/null with EPERM. `connect_read_pipe` checks only the file type
    and accepts /dev/null (a character device); the refusal would then come from a callback the
    loop runs later, logged as an error, rather than from here. So ask a selector first, as the
    loop's own would be asked.
    """
    if sys.stdin is None:
        return None
    try:
        fd = sys.stdin.fileno()
        with selectors.DefaultSelector() as probe:
            probe.register(fd, selectors.EVENT_READ)
    except (ValueError, OSError):
        return None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return None
    return reader


async def read_commands(apply: Apply, done: asyncio.Event) -> None:
    """Each line of stdin through `apply`, its reply printed; `done` once it says quit or stdin
    ends. Without a console, returns at once: the simulator then runs until a signal."""
    if (reader := await open_stdin()) is None:
        return
    while line := await reader.readline():
        reply = apply(line.decode(errors="replace"))
        if reply is None:
            break
        if reply:
            print(reply, flush=True)
    done.set()


@contextlib.contextmanager
def until_signal() -> Iterator[asyncio.Event]:
    """An event that SIGINT and SIGTERM set while the block runs (instead of interrupting it)."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, done.set)
    try:
        yield done
    finally:
        for sig in SIGNALS:
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(sig)


async def serve_console(
    apply: Apply,
    done: asyncio.Event,
    report: Coroutine[None, None, None] | None = None,
) -> None:
    """Read commands (and run `report`, a simulator's own output) until `done`."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(read_commands(apply, done), name="treadctl.sim.commands")]
        if report is not None:
            tasks.append(tg.create_task(report, name="treadctl.sim.reporter"))
        await done.wait()
        for task in tasks:
            task.cancel()


class MakesNoise(Protocol):
    def send_garbage(self, data: bytes | None = None, n: int = 16) -> bytes: ...


def shared_command(  # noqa: PLR0911 - one return per command
    line: str, *, help_text: str, status: Callable[[], str], device: MakesNoise
) -> str | None:
    """The commands every console takes (help, status, `garbage [N]`, quit) and the reply to an
    unknown one; a console's `apply` hands over the lines its own commands do not match."""
    words = line.split()
    match words:
        case []:
            return ""
        case ["quit" | "exit"]:
            return None
        case ["help"]:
            return help_text
        case ["status"]:
            return status()
        case ["garbage"] | ["garbage", _]:
            try:
                n = int(words[1]) if len(words) > 1 else 16
            except ValueError:
                return f"error: not a byte count: {words[1]!r}"
            return "sent " + device.send_garbage(n=max(1, min(n, 4096))).hex(" ")
    return f"error: unknown command {line.strip()!r} (try: help)"
