"""Commands typed on stdin for the simulators' consoles, when stdin can carry any."""

from __future__ import annotations

import asyncio
import selectors
import sys


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
