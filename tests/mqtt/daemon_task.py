"""The whole daemon (`run_daemon`) as a task of the test's event loop, for tests that need its
wiring rather than a rig's: its controller once ready, a clean exit (0) at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from treadctl.config.models import Settings
from treadctl.control.controller import Controller
from treadctl.daemon import run_daemon

READY_S = 10.0
EXIT_S = 20.0


@contextlib.asynccontextmanager
async def daemon_running(settings: Settings) -> AsyncIterator[Controller]:
    ready: asyncio.Queue[Controller] = asyncio.Queue()
    stop = asyncio.Event()
    daemon = asyncio.create_task(
        run_daemon(
            settings,
            stop=stop,
            handle_signals=False,
            on_ready=lambda controller, _bridge: ready.put_nowait(controller),
        ),
        name="test.daemon",
    )
    try:
        yield await asyncio.wait_for(ready.get(), READY_S)
    finally:
        stop.set()
        assert await asyncio.wait_for(daemon, EXIT_S) == 0
