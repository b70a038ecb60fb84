"""A simulator's end of a pseudo-terminal, which the host opens like a USB-serial adapter: raw
bytes, no echo; `unplug()` closes it under the host and `plug()` brings it back on a new pty, with
the optional `link` symlink following it (as /dev/serial/by-id/ does a real adapter)."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


class PtyPort:
    """`on_data`, when given, is called on the event loop with whatever the host wrote."""

    def __init__(
        self,
        *,
        link: Path | None = None,
        on_data: Callable[[bytes], None] | None = None,
        name: str = "simulator",
    ) -> None:
        self.link = link
        self.name = name  # for the log
        self.path = ""  # the pty's own name (/dev/pts/N) while plugged
        self._on_data = on_data
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes as a serial line carries them
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self._on_data is not None:
            asyncio.get_running_loop().add_reader(master, self._on_readable)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            self.link.symlink_to(self.path)

    def unplug(self) -> None:
        if self._master is not None:
            if self._on_data is not None:
                asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def write(self, data: bytes) -> bool:
        """Whether `data` went onto the line (not while unplugged or while the buffer is full)."""
        if self._master is None:
            return False
        try:
            os.write(self._master, data)
        except OSError as exc:  # nobody reading and the pty buffer full: a real device drops too
            log.debug("simulator write dropped", sim=self.name, error=str(exc))
            return False
        return True

    def _on_readable(self) -> None:
        if self._master is None or self._on_data is None:
            return
        try:
            data = os.read(self._master, 1024)
        except BlockingIOError:
            return
        except OSError:
            return  # EIO while no host has the port open; the next open brings it back
        if data:
            self._on_data(data)
