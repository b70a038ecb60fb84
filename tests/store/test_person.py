"""Who walked (issue 18): the person's pseudonymous id is recorded from the controller's typed
events, survives the migration of an older file, filters, shows, exports, and a person's sessions
can be deleted from this treadmill's store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from control.rig import FAST, rig
from store.synth import PhaseSpec, Synth, record, synthesise
from store.test_cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, MANUAL_ID, UPHILL_ID, run
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.core.events import SessionFinished, SessionStarted
from treadctl.core.session import SessionSummary
from treadctl.core.state import Mode
from treadctl.store import EndedHow, SessionStore, schema
from treadctl.store.queries import get_session, list_sessions, load_samples, open_readonly
from treadctl.store.recorder import SessionRecorder
from treadctl.store.schema import open_writer

T0 = 1_795_511_700.0


def recorder(store: SessionStore) -> SessionRecorder:
    return SessionRecorder(
        store, device_id="treadmill", driver="sim", plan_of=lambda _: None, rate_hz=5.0
    )


async def test_the_recorder_stores_the_person_of_the_typed_events(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SessionStore(path)
    await store.start()
    rec = recorder(store)
    summary = SessionSummary(60.0, 20.0, 50.0, None, None)
    for sid, person in (("s-1", "mrs-k"), ("s-2", None)):
        rec.on_controller(SessionStarted(ts=T0, session_id=sid, program="manual", person=person))
        rec.on_controller(
            SessionFinished(
                ts=T0 + 60,
                session_id=sid,
                program="manual",
                ended="stopped",
                cause="command",
                detail="stop command",
                summary=summary,
                person=person,
            )
        )
    await store.close()
    assert store.rejected == 0
    with closing(open_readonly(path)) as db:
        assert {s.id: s.person for s in list_sessions(db)} == {"s-1": "mrs-k", "s-2": None}
        assert [s.id for s in list_sessions(db, person="mrs-k")] == ["s-1"]
        started = get_session(db, "s-1").events[0]
    assert (started.type, started.details["person"]) == ("session_started", "mrs-k")


def build_version_1(path: Path) -> None:
    """A file as treadctl wrote it before people: schema version 1, one ended session."""
    with closing(sqlite3.connect(path)) as db:
        for statement in schema.MIGRATIONS[0]:
            db.execute(statement)
        db.execute(
            "INSERT INTO sessions (id, device_id, driver, program, started, ended, ended_how)"
            " VALUES ('old-1', 'treadmill', 'sim', 'manual', ?, ?, 'finished')",
            (T0, T0 + 60),
        )
        db.execute(
            "INSERT INTO samples VALUES ('old-1', ?, 1, 1.0, 'reverse', 'backward', 0, 1.0, 0.3,"
            " NULL, NULL, 'running')",
            (T0 + 1,),
        )
        db.execute("PRAGMA user_version = 1")
        db.commit()


async def test_an_older_file_migrates_and_its_sessions_have_no_person(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    build_version_1(path)
    with pytest.raises(schema.StoreError, match="older schema version 1"):
        open_readonly(path)  # reading alone never migrates
    store = SessionStore(path)
    await store.start()  # the daemon's start migrates
    synth = synthesise("new-1", T0 + 86_400, [PhaseSpec("b", "backward", 1.2, 30)])
    record(store, synth, program="manual", person="mrs-k")
    await store.close()
    assert store.rejected == 0
    with closing(open_readonly(path)) as db:
        assert schema.schema_version(db) == schema.SCHEMA_VERSION
        assert {s.id: s.person for s in list_sessions(db)} == {"old-1": None, "new-1": "mrs-k"}
        assert len(load_samples(db, "old-1")) == 1  # the old data is all there
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "sessions_person" in indexes


def test_only_a_pseudonymous_id_fits_the_column(tmp_path: Path) -> None:
    with closing(open_writer(tmp_path / "s.db")) as db:
        insert = (
            "INSERT INTO sessions (id, device_id, driver, program, started, person)"
            " VALUES (?, 'treadmill', 'sim', 'manual', 1.0, ?)"
        )
        db.execute(insert, ("a", "mrs-k"))
        db.execute(insert, ("b", None))
        for n, name in enumerate(["Mrs K", "anna.mueller", "", "x" * 33, "jürgen"]):
            with pytest.raises(sqlite3.IntegrityError):
                db.execute(insert, (f"bad-{n}", name))
        assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2


@pytest.fixture
def db(history: tuple[Path, dict[str, Synth]]) -> str:
    return str(history[0])


def test_list_filters_by_person(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "list", "--db", db, "--person", "mrs-k"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [UPHILL_ID]
    assert run(["sessions", "list", "--db", db, "--person", "mrs-k", "--json"]) == EXIT_OK
    [only] = json.loads(capsys.readouterr().out)
    assert (only["id"], only["person"]) == (UPHILL_ID, "mrs-k")
    assert run(["sessions", "list", "--db", db, "--person", "nobody"]) == EXIT_OK
    assert "no sessions recorded that match" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # a name is not an id
        run(["sessions", "list", "--db", db, "--person", "Mrs K"])
    assert exit_info.value.code == EXIT_USAGE
    assert "pseudonymous id" in capsys.readouterr().err


def test_show_and_exports_carry_the_person(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "show", MANUAL_ID, "--db", db]) == EXIT_OK
    assert "\nperson    -\n" in capsys.readouterr().out
    assert run(["sessions", "export", UPHILL_ID, "--format", "csv", "--db", db]) == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows
    assert {row["person"] for row in rows} == {"mrs-k"}
    assert run(["sessions", "export", UPHILL_ID, "--format", "json", "--db", db]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["session"]["person"] == "mrs-k"


def counts(path: Path) -> dict[str, int]:
    """The uphill session's phases, events and samples."""
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE session_id = ?", (UPHILL_ID,)
            ).fetchone()[0]
            for table in ("phases", "events", "samples")
        }


def test_delete_a_persons_sessions_needs_yes(
    history: tuple[Path, dict[str, Synth]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = history
    argv = ["sessions", "delete", "--person", "mrs-k", "--db", str(path)]
    before = counts(path)
    assert all(before.values())
    assert run(argv) == EXIT_FAILURE  # without --yes: only listed
    out, err = capsys.readouterr()
    assert out.startswith(UPHILL_ID)
    assert "nothing deleted" in err
    assert counts(path) == before

    assert run([*argv, "--yes"]) == EXIT_OK
    assert "deleted 1 session(s) of mrs-k" in capsys.readouterr().out
    assert counts(path) == {"phases": 0, "events": 0, "samples": 0}  # cascaded
    with closing(open_readonly(path)) as conn:
        assert [s.id for s in list_sessions(conn)] == [MANUAL_ID]  # nobody else's touched
        assert not conn.execute("SELECT 1 FROM events WHERE details LIKE '%mrs-k%'").fetchall()
    assert run([*argv, "--yes"]) == EXIT_OK
    assert "no sessions of mrs-k recorded" in capsys.readouterr().out


async def test_delete_leaves_an_open_session_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    store = SessionStore(path)
    await store.start()
    cases: list[tuple[str, float, EndedHow | None]] = [
        ("a-ended", T0, "finished"),
        ("b-open", T0 + 999, None),  # running, or left by a crash
    ]
    for sid, started, how in cases:
        synth = synthesise(sid, started, [PhaseSpec("b", "backward", 1.2, 10)])
        record(store, synth, program="manual", person="mrs-k", how=how)
    await store.close()
    argv = ["sessions", "delete", "--person", "mrs-k", "--yes", "--db", str(path)]
    assert run(argv) == EXIT_FAILURE
    out, err = capsys.readouterr()
    assert "deleted 1 session(s)" in out
    assert "still open" in err
    assert "b-open" in err
    with closing(open_readonly(path)) as conn:
        assert [s.id for s in list_sessions(conn)] == ["b-open"]


async def test_a_session_started_for_a_person_through_the_controller_is_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.db"
    store = SessionStore(path)
    await store.start()
    try:
        async with rig(FAST) as r:
            rec = recorder(store)
            r.controller.add_listener(rec.on_controller)
            command = c.ManualSet(0.8, WalkDirection.BACKWARD, person="mrs-k")
            assert (await r.run(command)).ok
            await r.until(lambda: r.sim.belt.speed_kmh <= -0.5, 10, "walking backward")
            assert (await r.run(c.Stop())).ok
            await r.mode(Mode.IDLE)
            await asyncio.wait_for(store.wait_flushed(), 5)
    finally:
        await store.close()
    assert store.rejected == 0
    with closing(open_readonly(path)) as db:
        [session] = list_sessions(db, person="mrs-k")
        samples = load_samples(db, session.id)
    assert (session.program, session.person, session.ended_how) == ("manual", "mrs-k", "stopped")
    assert samples
