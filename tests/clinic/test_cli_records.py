"""`treadctl annotate`, `measures`, `report` and `fit` on real databases: annotations checked
field by field (nothing changed on a bad one), a person's report and exports written, a session's
FIT file from the clinic's copy; one journey as a user runs it (subprocesses) and one on
PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_process import run_treadctl

from clinic.documents import session_document, store_sessions
from clinic.test_cli_people import NAME, Clinic
from treadctl.cli import main
from treadctl.cli_support import ExitCode
from treadctl.clinic.views import ADVERSE_CATEGORIES

STARTED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
PROGRAM = "alghadir2019-knee-oa"


@pytest.fixture
def clinic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Clinic:
    return Clinic(f"sqlite:///{tmp_path}/clinic.db", capsys)


def with_sessions(clinic: Clinic) -> None:
    clinic.ok("people", "add", "mrs-k", "--name", NAME)
    store_sessions(
        clinic.url,
        session_document("20261102-100000-aaaa", started=STARTED, duration_s=300),
        session_document("20261104-100000-bbbb", started=STARTED.replace(day=4), speed_kmh=1.3),
    )


def annotation(clinic: Clinic, session: str) -> object:
    sessions = clinic.json("people", "show", "mrs-k")["sessions"]
    return next(s["annotation"] for s in sessions if s["id"] == session)


def test_annotate_records_what_is_given_and_keeps_the_rest(clinic: Clinic) -> None:
    with_sessions(clinic)
    done = clinic.ok(
        "annotate",
        "20261102",  # a unique beginning of the id
        "--pain-before",
        "2",
        "--pain-after",
        "3",
        "--borg",
        "12",
        "--supervised-by",
        "therapist-a",
        "--adverse",
        "near_fall: caught the rail",
    )
    assert "session 20261102-100000-aaaa:" in done
    assert "pain before/after: 2/3, Borg: 12, supervised by: therapist-a" in done
    assert "adverse event: near_fall: caught the rail" in done
    clinic.ok("annotate", "20261102-100000-aaaa", "--notes", "asked for a break")
    assert annotation(clinic, "20261102-100000-aaaa") == {
        "pain_before": 2,
        "pain_after": 3,
        "exertion_borg": 12,
        "supervised_by": "therapist-a",
        "notes": "asked for a break",
        "adverse_events": [{"category": "near_fall", "text": "caught the rail"}],
    }
    assert annotation(clinic, "20261104-100000-bbbb") is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--pain-before", "11"), "pain_before"),
        (("--pain-after", "-1"), "pain_after"),
        (("--borg", "3"), "exertion_borg"),
        (("--adverse", "slip:on the belt"), "adverse_events.0.category"),
        (("--adverse", "fall"), "--adverse 'fall'"),
        (("--adverse", "fall:"), "--adverse 'fall:'"),
        (("--pain-before", "two"), "--pain-before"),
        ((), "nothing to record"),
    ],
)
def test_a_bad_annotation_names_the_field_and_changes_nothing(
    clinic: Clinic, args: tuple[str, ...], field: str
) -> None:
    with_sessions(clinic)
    clinic.ok("annotate", "20261102-100000-aaaa", "--pain-before", "2", "--borg", "12")
    before = annotation(clinic, "20261102-100000-aaaa")
    # with a good field beside the bad one: that does not change either
    good = ("--notes", "changed?") if args else ()
    result = clinic("annotate", "20261102-100000-aaaa", *good, *args)
    assert result.code == ExitCode.USAGE
    assert field in result.err
    assert annotation(clinic, "20261102-100000-aaaa") == before


def test_the_help_names_every_adverse_category(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"CATEGORY one of {', '.join(ADVERSE_CATEGORIES)}" in shown


def test_annotate_needs_one_known_session(clinic: Clinic) -> None:
    with_sessions(clinic)
    unknown = clinic("annotate", "nope", "--borg", "12")
    assert unknown.code == ExitCode.FAILURE
    assert "the clinic has no such session" in unknown.err
    ambiguous = clinic("annotate", "2026110", "--borg", "12")
    assert ambiguous.code == ExitCode.FAILURE
    assert "more than one session" in ambiguous.err
    wildcard = clinic("annotate", "2026110_", "--borg", "12")  # not a LIKE pattern
    assert wildcard.code == ExitCode.FAILURE


def test_measures_add_and_list(clinic: Clinic) -> None:
    with_sessions(clinic)
    clinic.ok("measures", "add", "mrs-k", "tug_s", "12.5", "--unit", "s", "--on", "2026-11-02")
    clinic.ok("measures", "add", "mrs-k", "berg", "44", "--on", "2026-10-30", "--notes", "baseline")
    listed = clinic.ok("measures", "list", "mrs-k")
    assert listed.splitlines() == [
        "2026-10-30  berg           44  baseline",
        "2026-11-02  tug_s          12.5 s",
    ]
    assert [(m["name"], m["value"]) for m in clinic.json("measures", "list", "mrs-k")] == [
        ("berg", 44.0),
        ("tug_s", 12.5),
    ]
    for args, field in (
        (("TUG", "12"), "name"),
        (("tug_s", "fast"), "value"),
        (("tug_s", "nan"), "value"),
        (("tug_s", "12", "--unit", "seconds-and-a-half"), "unit"),
    ):
        result = clinic("measures", "add", "mrs-k", *args)
        assert result.code == ExitCode.USAGE, args
        assert f"{field}:" in result.err
    assert len(clinic.json("measures", "list", "mrs-k")) == 2
    assert clinic("measures", "list", "nobody").code == ExitCode.FAILURE
    assert clinic("measures", "add", "nobody", "berg", "40").code == ExitCode.FAILURE


def test_report_as_html_pdf_csv_and_json(clinic: Clinic, tmp_path: Path) -> None:
    with_sessions(clinic)
    clinic.ok("prescriptions", "add", "mrs-k", PROGRAM, "--per-week", "3", "--weeks", "4")
    html = clinic.ok("report", "mrs-k")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "mrs-k" in html
    assert NAME not in html
    assert NAME in clinic.ok("report", "mrs-k", "--names")

    page = tmp_path / "mrs-k.html"
    clinic.ok("report", "mrs-k", "--out", str(page))
    assert "mrs-k" in page.read_text()
    pdf = tmp_path / "mrs-k.pdf"
    written = clinic("report", "mrs-k", "--out", str(pdf))  # the format from the suffix
    assert written.code == ExitCode.OK
    assert f"wrote {pdf}" in written.err
    assert pdf.read_bytes().startswith(b"%PDF")

    rows = list(csv.DictReader(io.StringIO(clinic.ok("report", "mrs-k", "--format", "csv"))))
    assert [r["session_id"] for r in rows] == ["20261102-100000-aaaa", "20261104-100000-bbbb"]
    assert {r["person"] for r in rows} == {"mrs-k"}
    document = json.loads(clinic.ok("report", "mrs-k", "--format", "json"))
    assert document["person"]["id"] == "mrs-k"
    assert document["person"]["name"] is None
    assert len(document["sessions"]) == 2

    unknown = clinic("report", "nobody")
    assert unknown.code == ExitCode.FAILURE
    assert "no such person" in unknown.err
    unwritable = clinic("report", "mrs-k", "--out", str(tmp_path / "no" / "dir" / "r.html"))
    assert unwritable.code == ExitCode.FAILURE


def test_a_pdf_is_not_written_to_a_terminal(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_sessions(clinic)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    refused = clinic("report", "mrs-k", "--format", "pdf")
    assert refused.code == ExitCode.USAGE
    assert "--out FILE" in refused.err
    assert refused.out == ""


def test_fit_writes_the_clinics_copy_of_a_session(clinic: Clinic, tmp_path: Path) -> None:
    with_sessions(clinic)
    out = tmp_path / "walk.fit"
    clinic.ok("fit", "20261104", "--out", str(out))
    data = out.read_bytes()
    assert data[8:12] == b".FIT"
    assert len(data) > 120 * 10  # a record a second
    missing = clinic("fit", "nope", "--out", str(out))
    assert missing.code == ExitCode.FAILURE
    assert "no such session" in missing.err


@pytest.mark.timeout(180)  # four processes of 2-6 s each, longer on a loaded machine
def test_a_journey_as_a_user_runs_it(tmp_path: Path) -> None:
    """Real processes, as a therapist types the commands (a fresh file, the clinic extra)."""
    url = f"sqlite:///{tmp_path}/clinic.db"

    def treadctl(*args: str) -> str:
        done = run_treadctl(*args, "--database", url)
        assert done.returncode == ExitCode.OK, done
        return done.stdout

    treadctl("people", "add", "mrs-k", "--limit", "max_speed_backward_kmh=2.5")
    store_sessions(url, session_document("20261102-100000-aaaa", started=STARTED))
    bad = run_treadctl("annotate", "20261102", "--borg", "30", "--database", url)
    assert bad.returncode == ExitCode.USAGE
    assert bad.stderr.startswith("treadctl: exertion_borg:")  # no Alembic chatter before it
    treadctl("report", "mrs-k", "--out", str(tmp_path / "report.pdf"))
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    assert "20261102-100" in treadctl("people", "show", "mrs-k")


def test_a_journey_on_postgresql(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clinic = Clinic(postgres_url, capsys)
    with_sessions(clinic)
    clinic.ok("prescriptions", "add", "mrs-k", PROGRAM, "--per-week", "3", "--weeks", "4")
    clinic.ok("annotate", "20261102", "--pain-before", "2", "--adverse", "dizziness:after turning")
    bad = clinic("annotate", "20261102", "--pain-before", "11")
    assert bad.code == ExitCode.USAGE
    assert annotation(clinic, "20261102-100000-aaaa") == {
        "pain_before": 2,
        "pain_after": None,
        "exertion_borg": None,
        "supervised_by": None,
        "notes": "",
        "adverse_events": [{"category": "dizziness", "text": "after turning"}],
    }
    clinic.ok("measures", "add", "mrs-k", "walk_10m_mps", "0.8", "--unit", "m/s")
    limited = clinic("people", "edit", "mrs-k", "--limit", "max_speed_backward_kmh=9")
    assert limited.code == ExitCode.USAGE
    assert "limits.max_speed_backward_kmh" in limited.err
    assert "mrs-k" in clinic.ok("report", "mrs-k")
    clinic.ok("fit", "20261104", "--out", str(tmp_path / "walk.fit"))
    deleted = clinic.ok("people", "delete", "mrs-k", "--yes")
    assert "2 session(s), 1 prescription(s), 1 measure(s)" in deleted
    assert clinic("annotate", "20261102", "--borg", "12").code == ExitCode.FAILURE
    assert clinic.json("people", "list", "--all") == []
