"""Warnings at most once per kind every WARN_EVERY_S: a flood of junk must not flood the log."""

from __future__ import annotations

import time

import structlog

WARN_EVERY_S = 10.0


class LogThrottle:
    def __init__(self, log: structlog.stdlib.BoundLogger, every_s: float = WARN_EVERY_S) -> None:
        self._log = log
        self._every_s = every_s
        self._warned: dict[str, float] = {}

    def warn(self, key: str, message: str, **fields: object) -> None:
        """A warning the first time for `key` in every_s, a debug line otherwise."""
        now = time.monotonic()
        if now - self._warned.get(key, -self._every_s) >= self._every_s:
            self._warned[key] = now
            self._log.warning(message, **fields)
        else:
            self._log.debug(message, **fields)
