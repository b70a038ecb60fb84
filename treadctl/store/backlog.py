"""The records waiting for the writer thread: shared by the event loop and the thread.

Appending holds the lock for microseconds, so recording never blocks the loop. The backlog is
bounded in samples only (the oldest dropped first, and counted): other records are few, and a
session's start must reach the file before its samples can.
"""

from __future__ import annotations

import threading
from collections import deque

from treadctl.store.rows import Record, Sampled


class Backlog:
    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self._cond = threading.Condition()
        self._queue: deque[Record] = deque()
        self._samples = 0
        self._seq = 0  # records accepted so far
        self._urgent = False
        self._closing = False
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Samples dropped because the backlog was full."""
        return self._dropped

    def put(self, rec: Record, *, urgent: bool = False) -> None:
        """Queue `rec` (ignored once closing); `urgent` wakes the writer at once."""
        with self._cond:
            if self._closing:
                return
            self._queue.append(rec)
            self._seq += 1
            if isinstance(rec, Sampled):
                self._samples += 1
                self._trim()
            if urgent:
                self._urgent = True
                self._cond.notify()

    def hurry(self) -> int:
        """Wake the writer now; the sequence number that everything queued so far reaches."""
        with self._cond:
            self._urgent = True
            self._cond.notify()
            return self._seq

    def close(self) -> None:
        """Refuse new records and wake the writer for its last cycle."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def wait(self, interval_s: float) -> bool:
        """(writer thread) Sleep until urgent, closing or `interval_s` is over; True if closing."""
        with self._cond:
            if not (self._urgent or self._closing):
                self._cond.wait(interval_s)
            self._urgent = False
            return self._closing

    def take(self) -> tuple[list[Record], int]:
        """(writer thread) Everything queued, and the sequence number it reaches."""
        with self._cond:
            batch = list(self._queue)
            self._queue.clear()
            self._samples = 0
            return batch, self._seq

    def give_back(self, batch: list[Record]) -> None:
        """(writer thread) A batch that could not be written goes back in front, trimmed."""
        with self._cond:
            self._queue.extendleft(reversed(batch))
            self._samples = sum(isinstance(rec, Sampled) for rec in self._queue)
            self._trim()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def _trim(self) -> None:
        """Drop the oldest samples beyond the limit (under the lock)."""
        while self._samples > self.max_samples:
            for i, rec in enumerate(self._queue):
                if isinstance(rec, Sampled):
                    del self._queue[i]
                    break
            else:
                return  # the count was off; nothing left to drop
            self._samples -= 1
            self._dropped += 1
