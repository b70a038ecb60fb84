"""Which ended sessions the clinic service has not acknowledged yet, each one's record, and
marking one delivered when its acknowledgement comes (docs/mqtt.md, "Session records for the
clinic service"; the sending is treadctl/mqtt/records.py).

Every call does its SQLite work in a worker thread, never on the event loop. Reads use the
store's read-only connection. The mark uses a short write connection of its own, not the
writer thread: the caller learns at once, and for sure, whether the id named a session of this
device (an unknown id is only logged, nothing changes), and the mark is committed before the
call returns, so the next look for undelivered sessions no longer sees it. WAL lets it sit
beside the writer thread: one UPDATE of one row, serialised with the writer's transactions by
the busy timeout (each of those begins with a write, so it waits rather than failing).
Nothing is deleted on an ack: the daemon keeps its own records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from treadctl.store.export import sample_object, session_document
from treadctl.store.queries import UnknownSessionError, get_session, sample_rows
from treadctl.store.schema import BUSY_TIMEOUT_MS, StoreError, open_readonly

_COMPACT = (",", ":")
_SAMPLES_PER_SLICE = 250  # about 50 kB of JSON: a millisecond or two of work


def undelivered_ids(conn: sqlite3.Connection, device_id: str) -> list[str]:
    """The device's ended sessions not acknowledged yet, oldest first. Only this device's: the
    record topic is the device's, and daemons sharing a file each send their own."""
    rows = conn.execute(
        "SELECT id FROM sessions WHERE device_id = ? AND ended IS NOT NULL AND delivered IS NULL"
        " ORDER BY started, id",
        (device_id,),
    )
    return [str(row[0]) for row in rows]


def delivered_at(conn: sqlite3.Connection, session_id: str) -> float | None:
    """When the clinic service acknowledged the session's record; None: not (yet)."""
    row = conn.execute("SELECT delivered FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def record_payload(conn: sqlite3.Connection, session_id: str) -> bytes | None:
    """The record as sent: `sessions export --format json`'s document, compact, byte for byte
    `json.dumps(session_document(...), separators=(",", ":"))`. None for a session deleted
    meanwhile (or not ended: only ended sessions are sent).

    Built a slice of samples at a time straight from the rows, offering the GIL to the event
    loop after each: one encoder call holds it throughout, a 30-minute session has 18 000
    samples, and the loop (an e-stop included) must not wait for all of them."""
    try:
        detail = get_session(conn, session_id)
    except UnknownSessionError:
        return None
    if detail.session.ended is None:
        return None
    head = json.dumps(session_document(detail, []), separators=_COMPACT)
    parts = [head.removesuffix("]}")]  # the samples come last: `…,"samples":[`
    for n, rows in enumerate(sample_rows(conn, session_id, batch=_SAMPLES_PER_SLICE)):
        encoded = json.dumps([sample_object(row) for row in rows], separators=_COMPACT)
        parts.extend(("," if n else "", encoded[1:-1]))
        time.sleep(0)  # a thread waiting for the GIL (the event loop's) takes it now
    parts.append("]}")
    return "".join(parts).encode()


def mark_delivered(
    conn: sqlite3.Connection, session_id: str, device_id: str, at: float
) -> str | None:
    """Record the clinic's acknowledgement; None when marked (now, or by an earlier ack: the
    first time is kept), else why nothing changed."""
    cursor = conn.execute(
        "UPDATE sessions SET delivered = ? WHERE id = ? AND device_id = ? AND ended IS NOT NULL"
        " AND delivered IS NULL",
        (at, session_id, device_id),
    )
    if cursor.rowcount == 1:
        return None
    row = conn.execute(
        "SELECT ended, delivered FROM sessions WHERE id = ? AND device_id = ?",
        (session_id, device_id),
    ).fetchone()
    if row is None:
        return f"no session {session_id!r} of device {device_id!r} in the store"
    if row[0] is None:
        return f"session {session_id!r} has not ended: only ended sessions are sent"
    return None  # acknowledged before: a re-ack changes nothing


def _open_for_mark(path: Path) -> sqlite3.Connection:
    """A write connection to the existing file (never creates it; the daemon migrated it)."""
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw",
        uri=True,
        isolation_level=None,  # autocommit: the UPDATE is its own transaction
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


class Deliveries:
    """The records of one device's sessions, for treadctl/mqtt/records.py. Each method raises
    StoreError (naming the file) on storage trouble; the sender logs it and tries again later."""

    def __init__(
        self, path: Path, device_id: str, *, wall: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.device_id = device_id
        self.wall = wall

    async def undelivered(self) -> list[str]:
        return await asyncio.to_thread(self._undelivered)

    async def document(self, session_id: str) -> bytes | None:
        return await asyncio.to_thread(self._document, session_id)

    async def mark_delivered(self, session_id: str) -> str | None:
        return await asyncio.to_thread(self._mark, session_id, self.wall())

    def _undelivered(self) -> list[str]:
        with self._translated(), contextlib.closing(open_readonly(self.path)) as conn:
            return undelivered_ids(conn, self.device_id)

    def _document(self, session_id: str) -> bytes | None:
        with self._translated(), contextlib.closing(open_readonly(self.path)) as conn:
            return record_payload(conn, session_id)

    def _mark(self, session_id: str, at: float) -> str | None:
        with self._translated(), contextlib.closing(_open_for_mark(self.path)) as conn:
            return mark_delivered(conn, session_id, self.device_id, at)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
