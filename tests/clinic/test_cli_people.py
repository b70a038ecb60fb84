"""`treadctl people …` on a real SQLite file, through `treadctl.cli.main` as a user types it:
add, list, show, edit, archive, delete; a bad value exits 2 naming the field and stores nothing,
a refusal exits 1."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clinic.documents import session_document, store_sessions
from treadctl.cli import main
from treadctl.cli_support import ExitCode

STARTED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NAME = "Anna Kowalska"


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str


class Clinic:
    """`treadctl ARGS --database URL`, in this process; its exit code and output."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str) -> Result:
        try:
            code = main([*args, "--database", self.url])
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.code == ExitCode.OK, result
        return result.out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def clinic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Clinic:
    return Clinic(f"sqlite:///{tmp_path}/clinic.db", capsys)


def add_mrs_k(clinic: Clinic) -> None:
    clinic.ok(
        "people",
        "add",
        "mrs-k",
        "--name",
        NAME,
        "--notes",
        f"{NAME}: knee replacement 2025",
        "--limit",
        "max_speed_backward_kmh=2.5",
        "--limit",
        "heart_rate_max_bpm=130",
        "--param",
        "comfortable_backward_kmh=1.2",
    )


def test_add_list_and_show_by_pseudonym_unless_names_are_asked(clinic: Clinic) -> None:
    add_mrs_k(clinic)
    clinic.ok("people", "add", "mr-b")
    listed = clinic.ok("people", "list")
    assert [line.split()[0] for line in listed.splitlines()] == ["mr-b", "mrs-k"]
    assert NAME not in listed
    assert NAME in clinic.ok("people", "list", "--names")
    people = {p["id"]: p for p in clinic.json("people", "list")}
    assert people["mrs-k"]["name"] is None
    assert people["mrs-k"]["notes"] == ""
    assert people["mrs-k"]["limits"] == {"max_speed_backward_kmh": 2.5, "heart_rate_max_bpm": 130}
    assert people["mrs-k"]["parameters"] == {"comfortable_backward_kmh": 1.2}
    assert clinic.json("people", "list", "--names")[1]["name"] == NAME

    shown = clinic.ok("people", "show", "mrs-k")
    assert NAME not in shown
    assert "notes: kept (--names shows them)" in shown
    assert "limits: max_speed_backward_kmh=2.5, heart_rate_max_bpm=130" in shown
    assert "saved parameters: comfortable_backward_kmh=1.2" in shown
    assert "prescriptions: none" in shown
    assert "sessions: none" in shown
    named = clinic.ok("people", "show", "mrs-k", "--names")
    assert f"person {NAME} (mrs-k)" in named
    assert f"notes: {NAME}: knee replacement 2025" in named


def test_show_lists_the_persons_sessions_and_measures(clinic: Clinic) -> None:
    add_mrs_k(clinic)
    store_sessions(
        clinic.url,
        session_document("20261102-100000-aaaa", started=STARTED, duration_s=600),
        session_document(
            "20261104-100000-bbbb",
            device="tm-2",
            started=STARTED.replace(day=4),
            duration_s=300,
            ended_how="estop",
            end_cause="button",
        ),
        session_document("20261104-110000-cccc", person="mr-b", started=STARTED.replace(day=4)),
    )
    clinic.ok("measures", "add", "mrs-k", "tug_s", "12.4", "--unit", "s", "--on", "2026-11-02")
    shown = clinic.ok("people", "show", "mrs-k")
    assert "sessions (2):" in shown
    rows = shown.split("sessions (2):")[1].splitlines()[2:]
    assert rows[0].split()[0] == "20261102-100"  # the id's beginning, which the commands take
    assert "tm-1" in rows[0]
    assert "10.0 m" in rows[0]
    assert "finished" in rows[0]
    assert "tm-2" in rows[1]
    assert "estop (button)" in rows[1]
    assert "2026-11-02  tug_s          12.4 s" in shown
    data = clinic.json("people", "show", "mrs-k")
    assert [s["id"] for s in data["sessions"]] == ["20261102-100000-aaaa", "20261104-100000-bbbb"]
    assert data["sessions"][1]["deviations"][0]["kind"] == "estop"
    assert data["measures"][0]["value"] == 12.4
    assert data["person"]["name"] is None


def test_edit_changes_the_fields_given_and_keeps_the_rest(clinic: Clinic) -> None:
    add_mrs_k(clinic)
    clinic.ok("people", "edit", "mrs-k", "--limit", "max_speed_backward_kmh=2.0")
    person = clinic.json("people", "list", "--names")[0]
    assert person["limits"] == {"max_speed_backward_kmh": 2.0, "heart_rate_max_bpm": 130}
    assert person["name"] == NAME
    clinic.ok("people", "edit", "mrs-k", "--clear-limits", "--limit", "max_incline_pct=3")
    clinic.ok("people", "edit", "mrs-k", "--no-name", "--param", "comfortable_backward_kmh=1.4")
    clinic.ok("people", "edit", "mrs-k", "--notes", "walks with a stick")
    person = clinic.json("people", "list", "--names")[0]
    assert person["limits"] == {"max_incline_pct": 3.0}
    assert person["name"] is None
    assert person["parameters"] == {"comfortable_backward_kmh": 1.4}
    assert person["notes"] == "walks with a stick"
    nothing = clinic("people", "edit", "mrs-k")
    assert nothing.code == ExitCode.USAGE
    assert "nothing to change" in nothing.err


def test_a_limit_beyond_the_ceiling_names_the_field_and_stores_nothing(clinic: Clinic) -> None:
    bad = clinic("people", "add", "mrs-k", "--limit", "max_speed_backward_kmh=9")
    assert bad.code == ExitCode.USAGE
    assert "limits.max_speed_backward_kmh" in bad.err
    assert "6.5" in bad.err  # the ceiling
    assert clinic.json("people", "list", "--all") == []

    add_mrs_k(clinic)
    for limit, field in (
        ("max_speed_backward_kmh=9", "limits.max_speed_backward_kmh"),
        ("max_speed_sideways_kmh=1", "limits.max_speed_sideways_kmh"),
        ("heart_rate_max_bpm=300", "limits.heart_rate_max_bpm"),
    ):
        result = clinic("people", "edit", "mrs-k", "--limit", limit)
        assert result.code == ExitCode.USAGE
        assert field in result.err
    malformed = clinic("people", "edit", "mrs-k", "--limit", "fast")
    assert malformed.code == ExitCode.USAGE
    assert "--limit 'fast'" in malformed.err
    negative = clinic("people", "edit", "mrs-k", "--param", "comfortable_backward_kmh=-1")
    assert negative.code == ExitCode.USAGE
    assert "parameters" in negative.err
    person = clinic.json("people", "list")[0]
    assert person["limits"] == {"max_speed_backward_kmh": 2.5, "heart_rate_max_bpm": 130}
    assert person["parameters"] == {"comfortable_backward_kmh": 1.2}


def test_ids_names_and_unknown_people(clinic: Clinic) -> None:
    bad_id = clinic("people", "add", "Mrs K")
    assert bad_id.code == ExitCode.USAGE
    assert "id:" in bad_id.err
    add_mrs_k(clinic)
    taken = clinic("people", "add", "mrs-k")
    assert taken.code == ExitCode.FAILURE
    assert "exists already" in taken.err
    for args in (("show", "nobody"), ("edit", "nobody", "--notes", "x"), ("archive", "nobody")):
        unknown = clinic("people", *args)
        assert unknown.code == ExitCode.FAILURE, args
        assert "'nobody': no such person" in unknown.err
    assert clinic("people", "show", "Not An Id").code == ExitCode.USAGE


def test_archive_hides_and_refuses_until_restored(clinic: Clinic) -> None:
    add_mrs_k(clinic)
    clinic.ok(
        "prescriptions", "add", "mrs-k", "alghadir2019-knee-oa", "--per-week", "3", "--weeks", "4"
    )
    archived = clinic.ok("people", "archive", "mrs-k")
    assert "ended prescription 1" in archived
    assert clinic.json("people", "list") == []
    assert clinic.json("people", "list", "--all")[0]["archived"] is not None
    assert "archived" in clinic.ok("people", "list", "--all")
    assert clinic.json("prescriptions", "list", "mrs-k")[0]["ended"] is not None
    refused = clinic(
        "prescriptions", "add", "mrs-k", "alghadir2019-knee-oa", "--per-week", "3", "--weeks", "4"
    )
    assert refused.code == ExitCode.FAILURE
    assert "archived" in refused.err
    measure = clinic("measures", "add", "mrs-k", "berg", "44")
    assert measure.code == ExitCode.FAILURE
    assert "archived" in measure.err
    clinic.ok("people", "edit", "mrs-k", "--restore")
    assert [p["id"] for p in clinic.json("people", "list")] == ["mrs-k"]


def test_delete_says_what_would_go_then_deletes_for_good_with_the_sessions(
    clinic: Clinic, tmp_path: Path
) -> None:
    add_mrs_k(clinic)
    clinic.ok("people", "add", "mr-b")
    clinic.ok(
        "prescriptions", "add", "mrs-k", "alghadir2019-knee-oa", "--per-week", "3", "--weeks", "4"
    )
    clinic.ok("measures", "add", "mrs-k", "berg", "44")
    store_sessions(
        clinic.url,
        session_document("s-1", started=STARTED),
        session_document("s-2", started=STARTED.replace(day=3)),
        session_document("s-3", person="mr-b", started=STARTED),
    )
    asked = clinic("people", "delete", "mrs-k")
    assert asked.code == ExitCode.FAILURE
    assert "2 session(s), 1 prescription(s)" in asked.out
    assert "1 measure(s)" in asked.out
    assert "nothing deleted" in asked.err
    assert "treadctl sessions delete --person mrs-k --yes" in asked.err
    assert len(clinic.json("people", "show", "mrs-k")["sessions"]) == 2

    deleted = clinic.ok("people", "delete", "mrs-k", "--yes")
    assert "2 session(s), 1 prescription(s), 1 measure(s)" in deleted
    assert "treadctl sessions delete --person mrs-k --yes" in deleted
    assert clinic("people", "show", "mrs-k").code == ExitCode.FAILURE
    assert clinic("annotate", "s-1", "--pain-before", "2").code == ExitCode.FAILURE
    assert [s["id"] for s in clinic.json("people", "show", "mr-b")["sessions"]] == ["s-3"]
    # secure_delete and a checkpoint: the name is in neither the file nor its log
    for path in tmp_path.glob("clinic.db*"):
        assert NAME.encode() not in path.read_bytes(), path
    again = clinic("people", "delete", "mrs-k", "--yes")
    assert again.code == ExitCode.FAILURE
    assert "no such person" in again.err


def test_the_database_comes_from_the_configuration_unless_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configured = tmp_path / "configured.db"
    config = tmp_path / "treadctl.toml"
    config.write_text(f'[clinic]\ndatabase = "sqlite:///{configured}"\n')
    assert main(["people", "add", "mrs-k", "--config", str(config)]) == ExitCode.OK
    assert configured.exists()
    assert oct(configured.stat().st_mode & 0o777) == "0o600"  # health data: the owner's alone
    capsys.readouterr()
    other = Clinic(f"sqlite:///{tmp_path}/other.db", capsys)
    assert other.json("people", "list", "--config", str(config)) == []  # --database wins
    broken = other("people", "list", "--config", str(tmp_path / "missing.toml"))
    assert broken.code == ExitCode.USAGE
    unusable = Clinic("mysql://nobody@localhost/clinic", capsys)("people", "list")
    assert unusable.code == ExitCode.FAILURE
    assert "SQLite or PostgreSQL" in unusable.err
