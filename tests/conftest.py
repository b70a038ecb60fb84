"""Shared fixtures. Every test runs under the leaked-task check below."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from treadctl import logs

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    logs.configure("WARNING", json=True)


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's daemons (in-process or subprocesses) keep their session database in the
    test's own directory, never in the user's ~/.local/state."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running (a leaked task may keep driving a belt)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let tasks that are finishing finish
    leaked = [
        t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()
    ]
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.gather(*leaked, return_exceptions=True)
        names = ", ".join(sorted(f"{t.get_name()} ({t.get_coro()!r})" for t in leaked))
        pytest.fail(f"test leaked {len(leaked)} asyncio task(s): {names}")
