"""The store's side of sending sessions to the clinic service (treadctl/store/delivery.py): the
v2→v3 migration that adds `delivered`, which sessions are undelivered, the record as sent, and
the mark an acknowledgement makes, on real SQLite files beside the real writer thread."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from store.synth import PhaseSpec, record, synthesise
from store.test_cli import EXIT_OK, run
from treadctl.store import SessionStore, schema
from treadctl.store.delivery import Deliveries, undelivered_ids
from treadctl.store.export import session_document
from treadctl.store.queries import get_session, load_samples, open_readonly

T0 = 1_795_511_700.0
DEVICE = "treadmill"  # store.synth.record's
WALK = [PhaseSpec("backward", "backward", 1.2, 60)]
LONG_WALK = [PhaseSpec("backward", "backward", 1.2, 1234)]  # samples encoded in slices


def build_version_2(path: Path) -> None:
    """A file as treadctl wrote it before deliveries: schema version 2, one ended session of
    mrs-k and one left open."""
    with closing(sqlite3.connect(path)) as db:
        for migration in schema.MIGRATIONS[:2]:
            for statement in migration:
                db.execute(statement)
        insert = (
            "INSERT INTO sessions (id, device_id, driver, program, started, ended, ended_how,"
            " person) VALUES (?, 'treadmill', 'sim', 'manual', ?, ?, ?, 'mrs-k')"
        )
        db.execute(insert, ("old-1", T0, T0 + 60, "finished"))
        db.execute(insert, ("old-2", T0 + 100, None, None))
        db.execute("PRAGMA user_version = 2")
        db.commit()


async def test_a_version_2_file_migrates_and_its_ended_sessions_are_undelivered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.db"
    await asyncio.to_thread(build_version_2, path)  # its commits would hold up the loop
    store = SessionStore(path, device_id=DEVICE)
    await store.start()  # the daemon's start migrates (and closes old-2 as interrupted)
    await store.close()
    with closing(open_readonly(path)) as db:
        assert schema.schema_version(db) == schema.SCHEMA_VERSION == 3
        columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
        assert "delivered" in columns
        assert db.execute("SELECT count(*) FROM sessions WHERE delivered IS NULL").fetchone() == (
            2,
        )
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        # the old ones, and the interrupted one now ended, are sent once a clinic is online
        assert undelivered_ids(db, DEVICE) == ["old-1", "old-2"]
        assert get_session(db, "old-1").session.person == "mrs-k"  # the old data is all there
    assert {"sessions_person", "sessions_undelivered"} <= indexes


async def recorded(path: Path) -> None:
    """Three ended sessions of this device (the middle one first in the file, to check the
    order), one still open, one of another device."""
    store = SessionStore(path)
    await store.start()
    record(store, synthesise("b", T0 + 1000, LONG_WALK), program="manual", person="mrs-k")
    record(store, synthesise("a", T0, WALK), program="manual", how="stopped", cause="command")
    record(store, synthesise("c", T0 + 2000, WALK), program="manual")
    record(store, synthesise("open", T0 + 3000, WALK), program="manual", how=None)
    await store.close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE sessions SET device_id = 'other' WHERE id = 'c'")
        db.commit()
        ids = [row[0] for row in db.execute("SELECT id FROM sessions ORDER BY id")]
    assert ids == ["a", "b", "c", "open"]


def delivered(path: Path) -> dict[str, float | None]:
    with closing(open_readonly(path)) as db:
        return dict(db.execute("SELECT id, delivered FROM sessions").fetchall())


async def test_undelivered_ended_sessions_of_this_device_oldest_first_and_their_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.db"
    await recorded(path)
    deliveries = Deliveries(path, DEVICE)
    assert await deliveries.undelivered() == ["a", "b"]
    payload = await deliveries.document("b")
    assert payload is not None
    with closing(open_readonly(path)) as db:
        expected = session_document(get_session(db, "b"), load_samples(db, "b"))
    # `sessions export --format json`'s document, compact, byte for byte
    assert payload == json.dumps(expected, separators=(",", ":")).encode()
    assert expected["format"] == "treadctl-session"
    assert expected["session"]["person"] == "mrs-k"
    assert len(expected["samples"]) == 1234
    assert await deliveries.document("open") is None  # only ended sessions are sent
    assert await deliveries.document("gone") is None  # deleted meanwhile


async def test_an_ack_marks_once_and_an_unknown_or_open_one_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.db"
    await recorded(path)
    clock = iter([T0 + 5000.0, T0 + 6000.0, T0 + 7000.0, T0 + 8000.0, T0 + 9000.0])
    deliveries = Deliveries(path, DEVICE, wall=lambda: next(clock))
    before = delivered(path)
    assert await deliveries.mark_delivered("nope") == (
        "no session 'nope' of device 'treadmill' in the store"
    )
    assert await deliveries.mark_delivered("c") == (
        "no session 'c' of device 'treadmill' in the store"  # another device's session
    )
    problem = await deliveries.mark_delivered("open")
    assert problem is not None
    assert "has not ended" in problem
    assert delivered(path) == before
    assert await deliveries.mark_delivered("a") is None
    assert await deliveries.mark_delivered("a") is None  # a re-ack: the first time is kept
    assert delivered(path) == before | {"a": T0 + 8000.0}
    assert await deliveries.undelivered() == ["b"]


async def test_marks_beside_the_writer_thread_never_fail_it(tmp_path: Path) -> None:
    """The mark's own write connection and the store's writer, at once: WAL and the busy
    timeout serialise them; no storage error, no record refused."""
    path = tmp_path / "sessions.db"
    await recorded(path)
    errors: list[str] = []
    store = SessionStore(path, device_id=DEVICE, on_error=errors.append, commit_interval_s=0.05)
    await store.start()
    long = synthesise("long", T0 + 4000, [PhaseSpec("walk", "backward", 1.2, 240)], rate_hz=5)
    deliveries = Deliveries(path, DEVICE)
    try:
        record(store, synthesise("long", T0 + 4000, []), program="manual", how=None)
        for n in range(0, len(long.samples), 100):  # the writer commits while the marks go on
            for sample in long.samples[n : n + 100]:
                store.sample("long", sample)
            assert await deliveries.mark_delivered("ab"[n // 100 % 2]) is None
        await store.wait_flushed()
    finally:
        await store.close()
    assert (errors, store.rejected) == ([], 0)
    marks = delivered(path)
    assert marks["a"] is not None
    assert marks["b"] is not None
    with closing(open_readonly(path)) as db:
        assert len(load_samples(db, "long")) == len(long.samples)


async def test_sessions_show_says_whether_the_clinic_acknowledged_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sessions.db"
    await recorded(path)
    await Deliveries(path, DEVICE).mark_delivered("a")
    assert run(["sessions", "show", "a", "--db", str(path)]) == EXIT_OK
    assert "\nclinic    acknowledged 20" in capsys.readouterr().out
    assert run(["sessions", "show", "b", "--db", str(path)]) == EXIT_OK
    assert "\nclinic    not acknowledged yet\n" in capsys.readouterr().out
    assert run(["sessions", "show", "open", "--db", str(path)]) == EXIT_OK
    assert "clinic" not in capsys.readouterr().out  # only ended sessions are sent
