"""SessionStore against real SQLite files: round trip, commit latency, crash recovery, failures."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import pytest
from waiting import until

from store.synth import UPHILL, PhaseSpec, record, synthesise
from treadctl.core.program import Plan
from treadctl.store import Sample, SessionStore
from treadctl.store.queries import get_session, list_sessions, load_samples, summarise
from treadctl.store.schema import open_readonly, open_writer

RECORDER = Path(__file__).with_name("recorder_proc.py")


def sample(ts: float, *, hr: int | None = 100) -> Sample:
    return Sample(ts, ts - 1000.0, 1.2, "reverse", "backward", 0.0, 1.2, ts / 10, hr, 0, "running")


def start_session(store: SessionStore, session_id: str = "s1", started: float = 1000.0) -> None:
    store.session_started(
        session_id,
        device_id="treadmill",
        driver="sim",
        program="chang2021-stroke",
        parameters={},
        plan=None,
        planned_s=600.0,
        started=started,
    )


def count(path: Path, table: str = "samples") -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "treadctl.store.writer"]


@pytest.fixture(autouse=True)
def _no_leaked_writer() -> object:
    yield None
    assert not writer_threads(), "a SessionStore was not closed"


class LagProbe:
    """How late a 5 ms ticker wakes up: the event loop's responsiveness.

    The heap is frozen first: with matplotlib and the rest of the suite loaded, one full garbage
    collection here takes 100-180 ms, a stall of the test process and not of the store.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.monotonic() - t0 - 0.005)

    async def __aenter__(self) -> Self:
        gc.collect()
        gc.freeze()
        self._task = asyncio.create_task(self._run(), name="test.lag-probe")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        gc.unfreeze()


async def test_everything_recorded_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SessionStore(path)
    await store.start()
    synth = synthesise("20261124T091500-ab12", 1_795_511_700.0, UPHILL)
    record(
        store,
        synth,
        program="backward-uphill",
        plan=Plan(sessions_per_week=3, weeks=4),
        parameters={"comfortable_backward_kmh": 1.5},
    )
    store.event(None, 1_795_513_000.0, "reset", {"by": "test"})  # an event outside any session
    await store.close()
    assert store.healthy
    assert store.rejected == 0

    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
        detail = get_session(db, session.id)
        samples = load_samples(db, session.id)
        loose = db.execute("SELECT type FROM events WHERE session_id IS NULL").fetchall()
    assert samples == synth.samples  # every field of every sample, in order
    assert session.program == "backward-uphill"
    assert session.parameters == {"comfortable_backward_kmh": 1.5}
    assert (session.plan_sessions_per_week, session.plan_weeks) == (3, 4)
    assert session.planned_s == sum(p.duration_s for p in UPHILL)
    assert session.ended == synth.samples[-1].ts
    assert (session.ended_how, session.end_cause) == ("finished", None)
    assert session.summary == summarise(synth.samples).as_dict()
    assert [p.label for p in detail.phases] == [p.label for p in UPHILL]
    assert [p.started for p in detail.phases] == [ts for _, ts in synth.phases]
    # a phase ends when the next starts; the last when the session ends
    assert [p.ended for p in detail.phases] == [
        *(ts for _, ts in synth.phases[1:]),
        session.ended,
    ]
    assert [p.walk for p in detail.phases] == [p.walk for p in UPHILL]
    assert [p.belt for p in detail.phases] == [
        "forward",
        "reverse",
        "reverse",
        "reverse",
        "reverse",
        "forward",
    ]
    assert [e.type for e in detail.events] == [
        "session_started",
        *["phase_started"] * len(UPHILL),
        "session_finished",
    ]
    assert detail.events[1].details == {"index": 0, "phase": "warm-up"}
    assert loose == [("reset",)]


async def test_caller_summary_adds_to_the_computed_one(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SessionStore(path)
    await store.start()
    start_session(store)
    for i in range(5):
        store.sample("s1", sample(1000.0 + i))
    store.session_ended(
        "s1", ended=1005.0, how="stopped", cause="command", detail="stop pressed",
        summary={"phases_done": 2, "distance_m": 42.0},
    )  # fmt: skip
    await store.close()
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
    assert session.summary is not None
    assert session.summary["phases_done"] == 2
    assert session.summary["distance_m"] == 42.0  # the caller's figure wins
    assert session.summary["samples"] == 5
    assert (session.ended_how, session.end_cause, session.end_detail) == (
        "stopped",
        "command",
        "stop pressed",
    )


async def test_samples_are_committed_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SessionStore(path)  # the default commit interval
    await store.start()
    try:
        start_session(store)
        # a session start is committed at once, not at the next interval
        assert await until(lambda: count(path, "sessions") == 1) < 0.25
        worst = 0.0
        for n in range(1, 4):
            store.sample("s1", sample(1000.0 + n))
            worst = max(worst, await until(lambda n=n: count(path) == n))  # type: ignore[misc]
            await asyncio.sleep(0.13 * n)  # land at different points of the commit cycle
        assert worst < 1.0
    finally:
        await store.close()


async def test_wait_flushed_never_misses_a_commit_it_races(tmp_path: Path) -> None:
    """The writer wakes the loop only when a flush is awaited; a waiter registered while a
    commit lands must still be woken by it, not left for a later one. With a 1 s commit
    interval, a missed wake-up would hold a wait for up to a second: each is bounded well
    below that, and every sample is in the file when its wait returns."""
    path = tmp_path / "s.db"
    store = SessionStore(path, commit_interval_s=1.0)
    await store.start()
    try:
        start_session(store)
        for n in range(1, 61):
            store.sample("s1", sample(1000.0 + n))
            async with asyncio.timeout(0.5):
                await store.wait_flushed()
            assert count(path) == n
            if n % 3 == 0:
                await asyncio.sleep(0.001 * n)  # wait from different points of the writer's cycle
    finally:
        await store.close()


async def test_wait_flushed_and_close_are_safe_to_repeat(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db")
    await store.start()
    await store.wait_flushed()  # nothing recorded yet: returns at once
    start_session(store)
    store.sample("s1", sample(1001.0))
    await store.wait_flushed()
    assert count(tmp_path / "s.db") == 1
    await store.close()
    await store.close()
    store.sample("s1", sample(1002.0))  # after close: ignored, not raised
    assert count(tmp_path / "s.db") == 1


async def test_records_the_database_refuses_are_dropped_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    errors: list[str] = []
    store = SessionStore(path, on_error=errors.append)
    await store.start()
    start_session(store)
    store.sample("never-started", sample(1001.0))  # foreign key: no such session
    store.sample("s1", sample(1002.0))
    store.session_ended("s1", ended=1003.0, how="finished", cause=None, detail=None)
    store.session_ended("s1", ended=1004.0, how="stopped", cause=None, detail=None)  # twice
    await store.close()
    assert store.rejected == 2
    assert store.healthy
    assert errors == []  # a caller's bug is logged, not a storage failure
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
    assert (session.ended, session.ended_how) == (1003.0, "finished")
    assert count(path) == 1


async def test_crash_recovery_closes_a_killed_session_at_its_last_sample(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(RECORDER), str(path), "40", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    last_ts = float(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with closing(open_readonly(path)) as db:
        [left_open] = list_sessions(db)
    assert left_open.ended is None

    store = SessionStore(path)
    await store.start()
    await store.close()
    assert store.recovered_sessions == ["20261124T101500-dead"]
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
        detail = get_session(db, session.id)
        samples = load_samples(db, session.id)
    assert len(samples) == 40
    assert session.ended == last_ts == samples[-1].ts
    assert (session.ended_how, session.end_cause) == ("interrupted", "crash")
    assert session.summary == summarise(samples).as_dict()
    assert session.summary["backward_s"] == pytest.approx(19.5)
    assert [p.ended for p in detail.phases] == [last_ts]

    again = SessionStore(path)  # a second start finds nothing left open
    await again.start()
    await again.close()
    assert again.recovered_sessions == []


async def test_crash_recovery_without_samples_ends_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with closing(open_writer(path)) as db:
        db.execute(
            "INSERT INTO sessions (id, device_id, driver, program, started)"
            " VALUES ('early', 'treadmill', 'sim', 'manual', 500.0)"
        )
    store = SessionStore(path)
    await store.start()
    await store.close()
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
    assert (session.ended, session.ended_how, session.end_cause) == (500.0, "interrupted", "crash")
    assert session.summary is not None
    assert session.summary["samples"] == 0


# --- storage failures ----------------------------------------------------------------------------


@dataclass
class Rig:
    """A store with quick retries and a small queue, and what its callbacks reported."""

    path: Path
    errors: list[str] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    max_pages: int | None = None
    store: SessionStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = SessionStore(
            self.path,
            on_error=self.errors.append,
            on_recovered=lambda: self.recovered.append(1),
            commit_interval_s=0.05,
            max_queued_samples=300,
            retry_min_s=0.05,
            retry_max_s=0.2,
            on_connect=self._on_connect,
        )

    def _on_connect(self, conn: sqlite3.Connection) -> None:
        # SQLITE_FULL for real: the pager refuses to grow the file past this many pages
        if self.max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {self.max_pages}")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path / "state" / "sessions.db")
    try:
        yield rig
    finally:
        await rig.store.close()


async def test_disk_full_is_reported_once_and_recovers(rig: Rig) -> None:
    store, errors, recovered = rig.store, rig.errors, rig.recovered
    path = store.path
    with closing(open_writer(path)) as db:
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    rig.max_pages = pages + 2
    await store.start()
    start_session(store)
    sent = 0
    async with LagProbe() as probe:
        for _ in range(150):  # ~1.5 s of samples at 1 kHz bursts
            for _ in range(10):
                sent += 1
                store.sample("s1", sample(1000.0 + sent * 0.01))  # never raises
            await asyncio.sleep(0.01)
        assert not store.healthy
        assert len(errors) == 1, errors  # one episode, one report
        assert "full" in errors[0]
        assert store.dropped > 0  # the queue stayed bounded
        rig.max_pages = None  # space again
        await until(lambda: bool(recovered))
    assert probe.worst < 0.1, f"event loop stalled {probe.worst:.3f} s"
    store.session_ended("s1", ended=2000.0, how="finished", cause=None, detail=None)
    await store.wait_flushed()
    assert store.healthy
    assert len(errors) == 1
    assert recovered == [1]
    assert count(path) + store.dropped == sent  # nothing lost that was not counted
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
    assert session.ended_how == "finished"


async def test_database_replaced_by_a_directory(rig: Rig) -> None:
    store, errors, recovered = rig.store, rig.errors, rig.recovered
    path = store.path
    await store.start()
    start_session(store)
    store.phase_started(
        "s1", index=0, label="backward", walk="backward", belt="reverse", speed_kmh=1.2,
        incline_pct=0.0, planned_s=600.0, started=1000.0,
    )  # fmt: skip
    for i in range(10):
        store.sample("s1", sample(1000.0 + i))
    await store.wait_flushed()

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()  # works as root too, unlike chmod
    async with LagProbe() as probe:
        later = [sample(1100.0 + i) for i in range(50)]
        for s in later[:25]:
            store.sample("s1", s)
        await until(lambda: bool(errors))
        await asyncio.sleep(0.5)  # several failed retries: still one report
        assert len(errors) == 1, errors
        assert "deleted or replaced" in errors[0]
        assert not store.healthy
        path.rmdir()
        for s in later[25:]:
            store.sample("s1", s)
        await until(lambda: bool(recovered))
    assert probe.worst < 0.1, f"event loop stalled {probe.worst:.3f} s"
    store.session_ended("s1", ended=1200.0, how="finished", cause=None, detail=None)
    await store.wait_flushed()
    # the old file is gone with what it held; the session goes on in a new one
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
        assert load_samples(db, "s1") == later
    assert (session.id, session.ended_how) == ("s1", "finished")
    assert store.dropped == 0


async def test_state_directory_vanishing_is_survived(rig: Rig) -> None:
    store, errors, recovered = rig.store, rig.errors, rig.recovered
    await store.start()
    start_session(store)
    store.sample("s1", sample(1001.0))
    await store.wait_flushed()
    shutil.rmtree(store.path.parent)
    store.sample("s1", sample(1002.0))
    await until(lambda: bool(recovered))  # the directory is made again
    await store.wait_flushed()
    assert len(errors) == 1
    assert store.healthy
    with closing(open_readonly(store.path)) as db:
        assert [s.ts for s in load_samples(db, "s1")] == [1002.0]


async def test_unopenable_at_start_is_retried_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    errors: list[str] = []
    recovered: list[int] = []
    store = SessionStore(
        blocker / "sessions.db",
        on_error=errors.append,
        on_recovered=lambda: recovered.append(1),
        retry_min_s=0.05,
        retry_max_s=0.1,
    )
    await store.start()  # does not raise: the daemon keeps driving the belt
    try:
        await until(lambda: bool(errors))
        assert not store.healthy
        start_session(store)
        store.sample("s1", sample(1001.0))
        os.unlink(blocker)  # noqa: PTH108
        await until(lambda: bool(recovered))
        await store.wait_flushed()
    finally:
        await store.close()
    assert count(blocker / "sessions.db") == 1
    assert len(errors) == 1


async def test_manual_session_summary_without_heart_rate(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SessionStore(path)
    await store.start()
    synth = synthesise("m1", 5000.0, [PhaseSpec("manual", "forward", 3.0, 60)], heart_rate=False)
    record(store, synth, program="manual", how="stopped", cause="command")
    await store.close()
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db)
    assert session.summary is not None
    assert session.summary["heart_rate_avg_bpm"] is None
    assert session.summary["heart_rate_peak_bpm"] is None
    assert session.summary["backward_s"] == 0.0


async def test_crash_recovery_leaves_other_devices_sessions_alone(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with closing(open_writer(path)) as db:
        for session_id, device in (("mine", "treadmill"), ("theirs", "clinic-2")):
            db.execute(
                "INSERT INTO sessions (id, device_id, driver, program, started)"
                " VALUES (?, ?, 'sim', 'manual', 500.0)",
                (session_id, device),
            )
    store = SessionStore(path, device_id="treadmill")
    await store.start()
    await store.close()
    assert store.recovered_sessions == ["mine"]
    with closing(open_readonly(path)) as db:
        assert {s.id: s.ended_how for s in list_sessions(db)} == {
            "mine": "interrupted",
            "theirs": None,
        }
