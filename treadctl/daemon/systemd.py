"""The daemon's side of systemd: READY/STATUS/STOPPING/RELOADING and the watchdog's liveness rule.

A watchdog ping (WATCHDOG=1, at half of WatchdogSec=) vouches for two things: the event loop
keeps time, and the controller's serial poll loop is making progress. If either stops, the
pings stop and systemd restarts the daemon, which commands a stop at start-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NoReturn

import structlog

from treadctl.core.state import Mode, Snapshot
from treadctl.sdnotify import Notifier

log = structlog.get_logger(__name__)

TICK_STALE_S = 2.0  # the controller's poll loop counts as wedged after this long


def status_line(snap: Snapshot) -> str:
    """systemd's STATUS=: one line a person reads in `systemctl status`."""
    if snap.mode is Mode.IDLE:
        return "idle: belt stopped"
    if snap.mode in (Mode.ESTOP, Mode.FAULT):
        return f"{snap.mode}: {snap.fault or 'belt stopped'}; reset to continue"
    what = snap.program or "manual"
    phase = f", {snap.phase}" if snap.phase else ""
    return (
        f"{snap.mode}: {what}{phase}; walk {snap.target.walk}, belt {snap.actual.belt}, "
        f"{snap.actual.speed_kmh:.1f} km/h"
    )


def poll_alive(last_tick_at: float | None, now: float) -> bool:
    """The liveness rule: a controller tick (monotonic time) within TICK_STALE_S."""
    return last_tick_at is not None and now - last_tick_at < TICK_STALE_S


class SystemdService:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @property
    def watchdog_s(self) -> float | None:
        return self.notifier.watchdog_s

    def ready(self) -> None:
        self.notifier.ready("idle: belt stopped")

    def status(self, snap: Snapshot) -> None:
        self.notifier.status(status_line(snap))

    def stopping(self) -> None:
        self.notifier.stopping("stopping the belt")

    def reloading(self) -> None:
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def reloaded(self) -> None:
        """After a reload, whether it changed anything or not."""
        self.notifier.send("READY=1")

    async def watchdog(self, last_tick_at: Callable[[], float | None]) -> NoReturn:
        """Ping at half of WatchdogSec=, skipping a ping after a blocked loop (a loop that
        just hung does not vouch for itself) or while the poll loop is stalled."""
        assert self.notifier.watchdog_s is not None
        period = self.notifier.watchdog_s / 2
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            late = loop.time() - due
            if late > period / 2:
                log.warning("event loop was blocked; watchdog ping skipped", late_s=round(late, 3))
                continue
            if poll_alive(last_tick_at(), time.monotonic()):
                self.notifier.watchdog()
            else:
                log.warning("controller poll loop stalled; watchdog ping skipped")
