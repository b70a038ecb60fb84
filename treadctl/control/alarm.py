"""A wake-up at an exact instant, for phase boundaries.

asyncio's own timers fire up to 1 ms late on Linux: the selector rounds epoll_wait's timeout up
to whole milliseconds. A timerfd armed for the instant (CLOCK_MONOTONIC, nanoseconds, the clock
of the event loop) becomes readable within the kernel's timer slack (~50 µs) and wakes the loop
through its reader. Where there is no timerfd (not Linux), `Alarm.precise` is False and the owner
keeps its asyncio timeout, which stays armed in any case as the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
_NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.timerfd_settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        )
    except (OSError, AttributeError):
        return None
    return libc


class Alarm:
    """One timerfd on the running loop; `set(at)` calls `ring` once the loop time reaches `at`
    (loop.time() is time.monotonic(), CLOCK_MONOTONIC)."""

    def __init__(self, ring: Callable[[], None]) -> None:
        self._ring = ring
        self._loop: asyncio.AbstractEventLoop | None = None
        self._libc: ctypes.CDLL | None = None
        self._fd = -1  # made at the first set(), so that an owner never run holds no descriptor
        self._tried = False
        self._armed = False

    @property
    def precise(self) -> bool:
        """Whether set() has a timerfd behind it (known after the first set())."""
        return self._fd >= 0

    def set(self, at: float) -> None:
        """Ring at loop time `at` (at once if it has passed); replaces an earlier setting.
        Without a timerfd it does nothing: the owner's asyncio timeout wakes it instead."""
        if not self._attach():
            return
        seconds, fraction = divmod(max(at, 1e-9), 1.0)
        self._settime(int(seconds), int(fraction * _NS) or 1)  # 0 would disarm it
        self._armed = True

    def cancel(self) -> None:
        if self._armed:
            self._settime(0, 0)
            self._armed = False

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1

    def _attach(self) -> bool:
        if not self._tried:
            self._tried = True
            self._libc = _libc()
            if self._libc is not None:
                self._fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self._fd < 0:
            return False
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            loop.add_reader(self._fd, self._readable)
            self._loop = loop
        return True

    def _settime(self, seconds: int, nanoseconds: int) -> None:
        assert self._libc is not None
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(seconds, nanoseconds))
        if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError):  # disarmed or re-armed after it became ready
            os.read(self._fd, 8)
            if self._armed:
                self._armed = False
                self._ring()
