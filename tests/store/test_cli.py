"""`treadctl sessions …` through its own argparse wiring, in-process, on a recorded history."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from store.synth import PhaseSpec, Synth, record, synthesise
from treadctl.cli_support import ExitCode, dispatch
from treadctl.core.program import Plan
from treadctl.store import SessionStore
from treadctl.store.cli import add_parser

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE

UPHILL_ID, MANUAL_ID = "20261124T091500-ab12", "20261126T170000-cd34"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="treadctl")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return dispatch(args)


@pytest.fixture
def db(history: tuple[Path, dict[str, Synth]]) -> str:
    return str(history[0])


def test_list(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "list", "--db", db]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "id", "started", "program", "person", "length", "distance", "backward", "ended"
    ]  # fmt: skip
    assert lines[1].startswith(UPHILL_ID)
    assert lines[1].split()[3:5] == ["backward-uphill", "mrs-k"]
    assert lines[2].split()[4] == "-"  # the manual session has no person
    assert "finished" in lines[1]
    assert "22:17" in lines[1]  # time on the belt
    assert lines[2].startswith(MANUAL_ID)
    assert "stopped (command)" in lines[2]


def test_list_filters_and_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "list", "--db", db, "--program", "manual", "--json"]) == EXIT_OK
    [only] = json.loads(capsys.readouterr().out)
    assert only["id"] == MANUAL_ID
    assert only["summary"]["heart_rate_avg_bpm"] is None
    assert run(["sessions", "list", "--db", db, "--since", "2026-11-26", "--json"]) == EXIT_OK
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [MANUAL_ID]
    assert run(["sessions", "list", "--db", db, "--since", "2027-01-01"]) == EXIT_OK
    assert "no sessions recorded that match" in capsys.readouterr().out


def test_show_by_unique_prefix(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "show", "20261124", "--db", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"session   {UPHILL_ID}" in out
    assert "\nperson    mrs-k\n" in out
    assert "plan      3 a week for 4 weeks" in out
    assert "backward, 7.5 %" in out
    assert "session_finished" in out
    assert "walking backward" in out


@pytest.mark.parametrize(
    ("prefix", "message"), [("2026112", "matches several sessions"), ("1999", "no session")]
)
def test_show_unknown_or_ambiguous(
    db: str, capsys: pytest.CaptureFixture[str], prefix: str, message: str
) -> None:
    assert run(["sessions", "show", prefix, "--db", db]) == EXIT_FAILURE
    assert message in capsys.readouterr().err


def test_export_csv_to_stdout_and_json_to_a_file(
    history: tuple[Path, dict[str, Synth]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, synths = history
    db = str(path)
    assert run(["sessions", "export", "20261126", "--format", "csv", "--db", db]) == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(synths["manual"].samples)
    assert [float(r["ts"]) for r in rows] == [s.ts for s in synths["manual"].samples]
    out = tmp_path / "uphill.json"
    argv = ["sessions", "export", UPHILL_ID, "--format", "json", "--out", str(out), "--db", db]
    assert run(argv) == EXIT_OK
    assert "written to" in capsys.readouterr().err
    assert len(json.loads(out.read_text())["samples"]) == len(synths["uphill"].samples)


def test_export_to_an_unwritable_place(db: str, tmp_path: Path) -> None:
    argv = ["sessions", "export", UPHILL_ID, "--format", "csv", "--db", db]
    assert run([*argv, "--out", str(tmp_path / "no" / "such" / "dir.csv")]) == EXIT_FAILURE


def test_plot(db: str, tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    assert run(["sessions", "plot", "20261124", "--out", str(out), "--db", db]) == EXIT_OK
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adherence_uses_the_stored_plan(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "adherence", "--db", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("backward-uphill: plan 3 sessions a week for 4 weeks, from 2026-11-23")
    assert "2026-W48" in out
    assert "manual" not in out  # manual sessions have no plan


async def test_adherence_of_one_person(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two people on the same program: each one's weeks count only their own sessions."""
    path = tmp_path / "s.db"
    store = SessionStore(path)
    await store.start()
    plan = Plan(sessions_per_week=3, weeks=4)
    days = [1_767_348_000.0, 1_767_441_600.0, 1_767_528_000.0]  # 2, 3 and 4 Jan 2026
    for n, (started, who) in enumerate(zip(days, ["mrs-k", "mrs-k", "mr-b"], strict=True)):
        synth = synthesise(f"2026010{n}-x", started, [PhaseSpec("b", "backward", 1.2, 60)])
        record(store, synth, program="backward-intervals", plan=plan, person=who)
    await store.close()
    argv = ["sessions", "adherence", "--db", str(path)]
    assert run([*argv, "--person", "mrs-k"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("backward-intervals for mrs-k: plan 3 sessions a week for 4 weeks")
    assert "2026-W01  2025-12-29  2/3  short" in out
    assert run([*argv, "--person", "mr-b"]) == EXIT_OK
    assert "2026-W01  2025-12-29  1/3  short" in capsys.readouterr().out
    assert run([*argv]) == EXIT_OK  # everyone together, as before
    assert "2026-W01  2025-12-29  3/3\n" in capsys.readouterr().out
    assert run([*argv, "--person", "nobody-here"]) == EXIT_OK
    assert "no completed program sessions of nobody-here" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # a name is not an id: argparse's usage error
        run([*argv, "--person", "Mrs K"])
    assert exit_info.value.code == EXIT_USAGE


async def test_adherence_falls_back_to_the_program_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    store = SessionStore(path)
    await store.start()
    for n, started in enumerate([1_767_348_000.0, 1_767_441_600.0]):  # 2 and 3 Jan 2026
        synth = synthesise(f"2026010{n}-x", started, [PhaseSpec("b", "backward", 1.2, 60)])
        record(store, synth, program="backward-intervals", plan=None)  # no plan stored
    await store.close()
    argv = ["sessions", "adherence", "--program", "backward-intervals", "--db", str(path)]
    assert run(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "plan 3 sessions a week for 4 weeks, from 2025-12-29 (2026-W01)" in out
    assert "2026-W01  2025-12-29  2/3  short" in out
    assert "2026-W02  2026-01-05  0/3  short" in out
    assert "adherence 17% (2 of 12" in out
    assert run(["sessions", "adherence", "--program", "manual", "--db", str(path)]) == 1
    assert "has no plan" in capsys.readouterr().out


def test_runtime_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sessions", "list", "--db", str(tmp_path / "none.db")]) == EXIT_FAILURE
    assert "no session database here" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\npath = 5\n")
    assert run(["sessions", "list", "--config", str(bad)]) == EXIT_USAGE
    assert "storage.path" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run(["sessions", "list", "--since", "last tuesday", "--db", str(bad)])
    assert exit_info.value.code == EXIT_USAGE
    with pytest.raises(SystemExit):
        run(["sessions", "plot", UPHILL_ID])  # --out is required


def test_database_from_the_config(
    history: tuple[Path, dict[str, Synth]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "treadctl.toml"
    config.write_text(f'[storage]\npath = "{history[0]}"\n')
    assert run(["sessions", "list", "--config", str(config), "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) == 2
