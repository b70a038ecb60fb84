"""Recording sessions without blocking the event loop.

The recording methods only append to an in-memory backlog (under a lock held for microseconds);
one writer thread owns the only write connection, commits at least every `commit_interval_s`
and at once when a session starts or ends. Storage trouble never reaches the caller: it becomes
one `on_error` call per failure episode, a bounded queue (oldest samples dropped first) and
periodic retries, then `on_recovered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from treadctl.core.program import Plan
from treadctl.store import rows
from treadctl.store.backlog import Backlog
from treadctl.store.model import EndedHow, EventRecord, PhaseRecord, Sample, SessionRecord
from treadctl.store.rows import Record, SessionEnded, SessionStarted
from treadctl.store.schema import StoreError, open_writer

log = structlog.get_logger(__name__)

_STORAGE_ERRORS = (sqlite3.Error, OSError, StoreError)
# A record the database refuses (a caller's bug, e.g. a sample for a session never started)
# is dropped on its own; retrying it would never succeed and would hold up everything behind it.
_RECORD_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    TypeError,
    ValueError,
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


class SessionStore:
    """Records sessions into an SQLite file from asyncio code without ever blocking it.

    `device_id` limits crash recovery to this device's sessions (several daemons may share a
    file). `on_error(message)` runs on the event loop once per failure episode, `on_recovered()`
    when writing works again. `on_connect(conn)` runs on every (re)opened write connection
    (tests use it to cap the file with `PRAGMA max_page_count`, an honest "disk full").
    """

    def __init__(
        self,
        path: Path,
        *,
        device_id: str | None = None,
        on_error: Callable[[str], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
        commit_interval_s: float = 0.5,
        max_queued_samples: int = 6000,
        retry_min_s: float = 0.5,
        retry_max_s: float = 10.0,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        if not 0 < commit_interval_s <= 1.0:
            raise ValueError("commit_interval_s must be in (0, 1]: at most 1 s may be lost")
        self.path = path
        self._device_id = device_id
        self._on_error = on_error
        self._on_recovered = on_recovered
        self._on_connect = on_connect
        self._interval = commit_interval_s
        self._retry_min, self._retry_max = retry_min_s, retry_max_s
        self._backlog = Backlog(max_queued_samples)  # shared between the loop and the thread
        # the writer thread's own (set in start() before the thread exists)
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        self._failing = False
        self._retry_s = retry_min_s
        self._next_retry = 0.0
        self._recovery_done = False
        self._open_sessions: dict[str, SessionRecord] = {}
        self.rejected = 0  # records the database refused (a caller's bug), logged each
        self.recovered_sessions: list[str] = []  # closed as interrupted at start-up
        # the loop's own
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Shared, under _seq_lock: what is committed, and who waits for it. The writer wakes the
        # loop only when someone waits (a wake-up per commit cost the idle daemon CPU).
        self._seq_lock = threading.Lock()
        self._flushed_seq = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def healthy(self) -> bool:
        return not self._failing

    @property
    def dropped(self) -> int:
        """Samples dropped because storage was failing and the queue was full."""
        return self._backlog.dropped

    # --- lifecycle (event loop) -----------------------------------------------------------------

    async def start(self) -> None:
        """Open (create, migrate), close sessions a crash left open, start the writer thread.

        Raises StoreError only for a file that must not be touched (a newer schema, not SQLite);
        I/O trouble is reported through on_error and retried like any later failure.
        """
        if self._loop is not None:
            raise RuntimeError("SessionStore.start() called twice")
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._open)
        except StoreError:
            self._loop = None
            raise
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
        self._thread = threading.Thread(target=self._run, name="treadctl.store.writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Write what is queued (one last attempt if storage is failing) and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._backlog.close()
        await asyncio.to_thread(thread.join)
        self._thread = None
        await asyncio.sleep(0)  # let the thread's last callbacks run
        with self._seq_lock:
            waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(
                    StoreError(f"{self.path}: closed before everything was written")
                )

    async def wait_flushed(self) -> None:
        """Return once everything recorded before the call is committed (or refused)."""
        if self._loop is None:
            raise RuntimeError("SessionStore is not started")
        target = self._backlog.hurry()
        with self._seq_lock:
            if self._flushed_seq >= target:
                return
            future: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append((target, future))
        await future

    # --- recording (event loop; never blocks, never raises for storage trouble) -----------------

    def session_started(
        self,
        session_id: str,
        *,
        device_id: str,
        driver: str,
        program: str,
        parameters: Mapping[str, Any],
        plan: Plan | None,
        planned_s: float | None,
        started: float,
        person: str | None = None,
    ) -> None:
        session = SessionRecord(
            session_id,
            device_id,
            driver,
            program,
            dict(parameters),
            plan.sessions_per_week if plan else None,
            plan.weeks if plan else None,
            planned_s,
            started,
            person=person,
        )
        self._backlog.put(SessionStarted(session), urgent=True)

    def phase_started(
        self,
        session_id: str,
        *,
        index: int,
        label: str,
        walk: str,
        belt: str,
        speed_kmh: float,
        incline_pct: float,
        planned_s: float | None,
        started: float,
    ) -> None:
        phase = PhaseRecord(index, label, walk, belt, speed_kmh, incline_pct, planned_s, started)
        self._backlog.put(rows.PhaseStarted(session_id, phase))

    def event(
        self,
        session_id: str | None,
        ts: float,
        type: str,  # noqa: A002 - the events table's column and core Event.type
        details: Mapping[str, Any],
    ) -> None:
        self._backlog.put(rows.Logged(session_id, EventRecord(ts, type, dict(details))))

    def sample(self, session_id: str, sample: Sample) -> None:
        self._backlog.put(rows.Sampled(session_id, sample))

    def session_ended(
        self,
        session_id: str,
        *,
        ended: float,
        how: EndedHow,
        cause: str | None,
        detail: str | None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        """`summary` adds to (or overrides) the figures summarise() computes from the samples."""
        self._backlog.put(
            SessionEnded(
                session_id, ended, how, cause, detail, None if summary is None else dict(summary)
            ),
            urgent=True,
        )

    # --- callbacks onto the loop ----------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            loop.call_soon_threadsafe(callback, *args)

    def _report_error(self, message: str) -> None:
        if self._on_error is not None:
            self._on_error(message)

    def _report_recovered(self) -> None:
        if self._on_recovered is not None:
            self._on_recovered()

    def _flushed(self) -> None:
        with self._seq_lock:
            done = [future for target, future in self._waiters if target <= self._flushed_seq]
            self._waiters = [w for w in self._waiters if w[0] > self._flushed_seq]
        for future in done:
            if not future.done():
                future.set_result(None)

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            closing = self._backlog.wait(self._interval)
            self._cycle(force=closing)
            if closing:
                break
        if lost := len(self._backlog):
            log.error("session store closed with records unwritten", path=str(self.path), lost=lost)
        self._drop_connection()

    def _open(self) -> None:
        conn = open_writer(self.path)
        try:
            if self._on_connect is not None:
                self._on_connect(conn)
            if not self._recovery_done:
                self.recovered_sessions = rows.recover_interrupted(conn, self._device_id)
                self._recovery_done = True
                if self.recovered_sessions:
                    log.warning(
                        "sessions left open by a crash closed as interrupted",
                        sessions=self.recovered_sessions,
                    )
            # A file that was deleted or replaced comes back empty: sessions still running must
            # exist in it again before their phases and samples can land.
            for session in self._open_sessions.values():
                rows.insert_session(conn, session, replay=True)
            file_id = _identity(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn, self._file_id = conn, file_id

    def _cycle(self, *, force: bool) -> None:
        if self._conn is None:
            if not force and time.monotonic() < self._next_retry:
                return
            try:
                self._open()
            except _STORAGE_ERRORS as exc:
                self._fail(exc)
                return
        batch, upto = self._backlog.take()
        try:
            self._write(batch)
        except _STORAGE_ERRORS as exc:
            self._backlog.give_back(batch)
            self._drop_connection()
            self._fail(exc)
            return
        self._succeeded(upto)

    def _write(self, batch: list[Record]) -> None:
        """One transaction for the batch; on a storage error the caller rolls back (by dropping
        the connection) and queues the batch again."""
        conn = self._conn
        assert conn is not None
        # SQLite keeps writing to a deleted (or renamed-over) file without complaint: check the
        # path still names the file we hold, or those records would be lost silently.
        if _identity(self.path) != self._file_id:
            raise StoreError(f"{self.path}: the database file was deleted or replaced")
        if not batch:
            return
        conn.execute("BEGIN")
        written = [rec for rec in batch if self._apply_one(conn, rec)]
        conn.execute("COMMIT")
        for rec in written:
            if isinstance(rec, SessionStarted):
                self._open_sessions[rec.session.id] = rec.session
            elif isinstance(rec, SessionEnded):
                self._open_sessions.pop(rec.session_id, None)

    def _apply_one(self, conn: sqlite3.Connection, rec: Record) -> bool:
        try:
            if rows.apply(conn, rec):
                return True
            error = "no such session, or it has already ended"
        except _RECORD_ERRORS as exc:
            error = str(exc)
        self.rejected += 1
        log.warning("session store refused a record", record=repr(rec), error=error)
        return False

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # close() rolls back an open transaction; errors here add nothing to the one reported
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _fail(self, exc: BaseException) -> None:
        self._next_retry = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, self._retry_max)
        if self._failing:
            log.debug("session store still failing", path=str(self.path), error=_describe(exc))
            return
        self._failing = True
        message = (
            f"session store {self.path}: {_describe(exc)}; samples are kept in memory "
            f"(up to {self._backlog.max_samples}, oldest dropped first) and writing is retried"
        )
        log.error("session store failing", path=str(self.path), error=_describe(exc))
        self._post(self._report_error, message)

    def _succeeded(self, upto: int) -> None:
        self._retry_s = self._retry_min
        if self._failing:
            self._failing = False
            log.warning(
                "session store writing again", path=str(self.path), dropped=self._backlog.dropped
            )
            self._post(self._report_recovered)
        with self._seq_lock:
            self._flushed_seq = max(self._flushed_seq, upto)
            waited = any(target <= upto for target, _ in self._waiters)
        if waited:
            self._post(self._flushed)
