"""Shared fixtures. Every test runs under the leaked-task check and the event-loop stall monitor
below (tests/loopwatch.py)."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopwatch import LoopWatch, stall_threshold_s
from treadctl import logs

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "blocks_loop(reason): the test blocks its own event loop on purpose (the stall monitor "
        "then requires a stall instead of failing on one)",
    )
    config.addinivalue_line(
        "markers",
        "broker: set on every test that uses the `broker` or `own_broker` fixture (mosquitto, or "
        "the embedded broker); CI runs them again with TREADCTL_TEST_BROKER=embedded",
    )
    config.addinivalue_line(
        "markers",
        "mosquitto_clients: the test drives the daemon with mosquitto_pub/sub/rr (skipped where "
        "mosquitto-clients is not installed, so CI's embedded-broker pass leaves it out)",
    )
    config.addinivalue_line(
        "markers",
        "postgres: the test uses the tests' PostgreSQL server (tests/clinic/postgres.py)",
    )
    config.addinivalue_line(
        "markers",
        "journey: a minutes-long end-to-end journey of real processes (CI's embedded-broker pass "
        "leaves it out: the same flows' broker use is covered there by the shorter tests)",
    )
    config.addinivalue_line(
        "markers",
        "broker_incidental: the broker only carries the test's commands; its subject is the "
        "serial line, the disk or the configuration (CI's embedded-broker pass leaves it out)",
    )


def pytest_collection_finish() -> None:
    """Everything imported by then (treadctl, pytest, hypothesis, paho, matplotlib...) lives for
    the whole session: frozen out of the garbage collector's reach, its full collections stop
    rescanning it, which in the suite's own process held test loops for 100 ms and more."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown() -> None:
    """The same after every test, between tests, once the loop's stall monitor has finished:
    what a test leaves alive (its imports' modules, pytest's report, caches) lives on, and left
    in the collector's reach it made a later test's full collection hold that test's loop for
    300+ ms in CI's run of 1200 tests. Frozen, a collection scans what the running test made;
    each of these collections then takes a few milliseconds."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"broker", "own_broker"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


@dataclass
class _Largest:
    seconds: float = 0.0
    test: str = ""
    where: str = ""
    tests: int = 0


_LARGEST = _Largest()


@pytest.fixture(autouse=True)
async def _loop_stall_monitor(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail a test whose event loop is blocked for longer than 200 ms (tests/loopwatch.py): the
    loop hosts the controller and the simulated treadmill, whose 0.5 s watchdog a blocked loop
    trips. The failure shows where the loop thread was while it was blocked."""
    watch = LoopWatch(asyncio.get_running_loop())
    try:
        yield
    finally:
        watch.close()
    marker = request.node.get_closest_marker("blocks_loop")
    if marker is not None:
        # (at most 200 ms even when TREADCTL_TEST_STALL_MS raises the threshold to look around)
        blocked = watch.largest.seconds >= min(watch.threshold_s, 0.2)
        assert blocked, f"marked blocks_loop ({marker.args}) but no stall was seen"
        return
    _LARGEST.tests += 1
    if log := os.environ.get("TREADCTL_TEST_STALL_LOG"):
        with Path(log).open("a") as out:
            ms, where = watch.largest.seconds * 1000, watch.largest.where()
            out.write(f"{ms:8.1f} ms  {request.node.nodeid}  {where}\n")
    if watch.largest.seconds > _LARGEST.seconds:
        where = watch.largest.where()
        _LARGEST.seconds, _LARGEST.test, _LARGEST.where = (
            watch.largest.seconds,
            request.node.nodeid,
            where,
        )
    if watch.stalls:
        pytest.fail(watch.report(), pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LARGEST.tests:
        largest, threshold = _LARGEST.seconds * 1000, stall_threshold_s() * 1000
        terminalreporter.write_line(
            f"event loop: largest stall {largest:.0f} ms over {_LARGEST.tests} tests (threshold "
            f"{threshold:.0f} ms), in {_LARGEST.test} at {_LARGEST.where}"
        )


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
