"""Event-loop stall monitor for the tests (see docs/testing.md#event-loop-stalls).

A test's event loop hosts the controller, the simulated treadmill, the MQTT bridge and the user:
one callback that blocks it (a `time.sleep`, a blocking subprocess wait, a broker started in the
loop's thread) starves every one of them, and the simulated treadmill's 0.5 s watchdog stops the
belt in a test about something else. The monitor times every iteration of the loop: from the
moment the selector returns to the end of the iteration, which is the time the loop spends running
callbacks and cannot react to anything. Waiting in the selector (idle) is not counted.

A watcher thread samples the loop thread's stack while an iteration runs long, so a stall is
reported with where it happened, not where it was noticed. The cost is two `perf_counter()` calls
per iteration and a thread waking every 20 ms.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

# A loop iteration longer than this fails the test. The simulated treadmill's watchdog is 0.5 s and
# the drivers' response timeout 0.25 s; a healthy iteration takes well under 10 ms. 0.2 s leaves
# room for a process preempted on a loaded 2-core CI machine (the largest seen over the whole
# suite is in docs/testing.md) and still finds a blocking call long before it trips a watchdog.
DEFAULT_STALL_MS = 200


def stall_threshold_s() -> float:
    """DEFAULT_STALL_MS, or TREADCTL_TEST_STALL_MS (read when a watch starts, not at import)."""
    return float(os.environ.get("TREADCTL_TEST_STALL_MS", DEFAULT_STALL_MS)) / 1000


# The watcher wakes every WAKE_S and samples the loop thread's stack once an iteration has run for
# SAMPLE_AFTER_S, so shorter stalls are shown with where they happened too (the suite's largest).
WAKE_S = 0.02
SAMPLE_AFTER_S = 0.04


_REPO = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class Stall:
    seconds: float
    stack: str  # the loop thread's stack while the iteration ran long ("" when not sampled)
    gc_s: float = 0.0  # of which the garbage collector ran in the loop thread

    def where(self) -> str:
        """The innermost frame of the stack that is in this repository's code, and the part the
        garbage collector took (it holds the interpreter: the watcher cannot sample it)."""
        lines = [line for line in self.stack.splitlines() if line.startswith('  File "')]
        ours = [line for line in lines if _REPO in line and "/.venv/" not in line]
        where = (ours or lines or ["(no stack sampled)"])[-1].strip()
        gc_ms = round(self.gc_s * 1000)
        return f"{where} [garbage collection {gc_ms} ms]" if gc_ms else where


def _callback_stack(frame: FrameType) -> str:
    """The stack from the loop callback down (the frames above it are asyncio and pytest)."""
    frames = traceback.extract_stack(frame)
    starts = [
        i
        for i, f in enumerate(frames)
        if f.name == "_run" and Path(f.filename).match("asyncio/events.py")
    ]
    return "".join(traceback.format_list(frames[starts[-1] + 1 if starts else 0 :]))


class LoopWatch:
    """Times each iteration of `loop` (a selector event loop) until `close()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold_s: float | None = None) -> None:
        # _run_once and _selector are private to asyncio's selector event loops
        self.loop: Any = cast(Any, loop)
        self.threshold_s = stall_threshold_s() if threshold_s is None else threshold_s
        self.stalls: list[Stall] = []
        self.largest = Stall(0.0, "")
        self._busy_since: float | None = None
        self._sampled_for: float | None = None
        self._sample = ""
        self._gc_started: float | None = None
        self._gc_s = 0.0  # in the current iteration
        self._loop_thread = threading.get_ident()
        self._closed = threading.Event()
        self._selector = self.loop._selector
        # what to put back: the class's methods, or another watch's wrappers
        self._own_attrs = (vars(self.loop).get("_run_once"), vars(self._selector).get("select"))
        self._run_once = self.loop._run_once
        self._select = self._selector.select
        self.loop._run_once = self._timed_run_once
        self._selector.select = self._timed_select
        self._watcher = threading.Thread(target=self._watch, name="test.loopwatch", daemon=True)
        self._watcher.start()
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if threading.get_ident() != self._loop_thread or self._busy_since is None:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self._gc_s += time.perf_counter() - self._gc_started
            self._gc_started = None

    def _timed_select(self, timeout: float | None = None) -> Any:
        self._end_busy()
        try:
            return self._select(timeout)
        finally:
            self._busy_since = time.perf_counter()

    def _timed_run_once(self) -> None:
        try:
            self._run_once()
        finally:
            self._end_busy()

    def _end_busy(self) -> None:
        since, self._busy_since = self._busy_since, None
        gc_s, self._gc_s = self._gc_s, 0.0
        if since is None:
            return
        took = time.perf_counter() - since
        if took <= self.largest.seconds and took < self.threshold_s:
            return
        stall = Stall(took, self._sample if self._sampled_for == since else "", gc_s)
        self.largest = max(self.largest, stall, key=lambda s: s.seconds)
        if took >= self.threshold_s:
            self.stalls.append(stall)

    def _watch(self) -> None:
        """Samples the loop thread's stack once an iteration has run past SAMPLE_AFTER_S."""
        while not self._closed.wait(WAKE_S):
            since = self._busy_since
            if since is None or since == self._sampled_for:  # one sample: where it first ran long
                continue
            if time.perf_counter() - since < SAMPLE_AFTER_S:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            stack = _callback_stack(frame)
            if self._busy_since == since:  # still the same iteration: the stack is its own
                self._sampled_for, self._sample = since, stack

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)
        self._closed.set()
        self._watcher.join()
        self._end_busy()
        run_once, select = self._own_attrs
        if run_once is None:
            del self.loop._run_once
        else:
            self.loop._run_once = run_once
        if select is None:
            del self._selector.select
        else:
            self._selector.select = select

    def report(self) -> str:
        """What a failing test says: each stall with where the loop thread was."""
        header = (
            f"the event loop was blocked {len(self.stalls)} time(s) for longer than "
            f"{self.threshold_s * 1000:.0f} ms (tests/loopwatch.py; docs/testing.md):"
        )
        parts = [header]
        for stall in self.stalls:
            gc_ms = round(stall.gc_s * 1000)
            gc_part = f" (garbage collection {gc_ms} ms)" if gc_ms else ""
            parts.append(f"-- blocked {stall.seconds * 1000:.0f} ms{gc_part}, at:")
            parts.append(
                stall.stack.rstrip()
                or "   (not sampled: the watcher thread did not run during it either, so most"
                " likely the whole process was not scheduled; or the stall ended first)"
            )
        return "\n".join(parts)
