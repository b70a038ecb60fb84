"""Telling the world: the controller's snapshots and events, to each of its listeners."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from treadctl.core.state import Event, Snapshot

log = structlog.get_logger(__name__)

Listener = Callable[[Snapshot | Event], None]


class Publisher:
    """Called in the controller's tick: listeners must be quick (they enqueue)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.last_snapshot: Snapshot | None = None

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def snapshot(self, snapshot: Snapshot) -> None:
        self.last_snapshot = snapshot
        self.tell(snapshot)

    def tell(self, item: Snapshot | Event) -> None:
        for listener in self._listeners:
            try:
                listener(item)
            except Exception:  # a broken consumer must not stop the belt's owner
                log.exception("listener failed")
