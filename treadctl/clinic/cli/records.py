"""`treadctl annotate`, `measures add|list`, `report` and `fit`: the dose log and what comes out
of it (a person's report, exports for a lab, a session's FIT file).

Sessions are the clinic's copies (what the daemons sent); a session is named by its id or enough
of its beginning to be unique, as `people show` lists them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadctl.cli_support import ExitCode, Subparsers, UsageError
from treadctl.clinic.cli import text
from treadctl.clinic.cli.common import (
    clinic_parser,
    command_group,
    day,
    now,
    person_id,
    print_json,
    transaction,
    write_output,
)
from treadctl.clinic.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

USUAL_MEASURES = (
    "tug_s (Timed Up and Go, s), walk_10m_mps (10 m walk speed, m/s), walk_6min_m (6-minute "
    "walk, m), berg (Berg balance scale, 0-56), backward_3m_s (3 m backward walk, s); any other "
    "name of a-z, 0-9, '_', '.', '-' is kept as well"
)
FORMATS = ("html", "pdf", "csv", "json")
# views.ADVERSE_CATEGORIES, written out: the parser is built without the clinic's modules
ADVERSE_HELP = (
    "an adverse event (repeatable; replaces those recorded), CATEGORY one of fall, near_fall, "
    "pain, dizziness, cardiovascular, skin, other"
)


def resolve_session(db: Session, given: str) -> str:
    """The full id of the clinic's session `given` names, whole or by a unique beginning."""
    from sqlalchemy import select  # noqa: PLC0415

    from treadctl.clinic.tables import SessionRow  # noqa: PLC0415

    if db.get(SessionRow, given) is not None:
        return given
    query = select(SessionRow.id).where(SessionRow.id.startswith(given, autoescape=True))
    found = list(db.scalars(query.order_by(SessionRow.id).limit(2)))
    if not found:
        raise NotFoundError(f"session {given!r}: the clinic has no such session")
    if len(found) > 1:
        raise ConflictError(f"session {given!r}: more than one session begins so; give more of it")
    return found[0]


def session_document(db: Session, session_id: str) -> dict[str, Any]:
    """The session's document as the daemon sent it (treadctl-session v1, samples and all)."""
    from treadctl.clinic.annotations import session_row  # noqa: PLC0415

    return dict(session_row(db, resolve_session(db, session_id)).document)


# --- annotate ----------------------------------------------------------------------------------


def _adverse(items: list[str]) -> list[dict[str, str]]:
    from treadctl.clinic.views import ADVERSE_CATEGORIES  # noqa: PLC0415

    events = []
    for item in items:
        category, sep, what = item.partition(":")
        if not sep or not what.strip():
            raise UsageError(
                f"--adverse {item!r}: use CATEGORY:TEXT, CATEGORY one of "
                f"{', '.join(ADVERSE_CATEGORIES)}"
            )
        events.append({"category": category.strip(), "text": what.strip()})
    return events


def cmd_annotate(args: argparse.Namespace) -> int:
    from treadctl.clinic.annotations import annotate  # noqa: PLC0415
    from treadctl.clinic.forms import AnnotationForm, parse  # noqa: PLC0415

    fields = {
        "pain_before": args.pain_before,
        "pain_after": args.pain_after,
        "exertion_borg": args.borg,
        "supervised_by": args.supervised_by,
        "notes": args.notes,
    }
    data: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if args.adverse:
        data["adverse_events"] = _adverse(args.adverse)
    if not data:
        raise UsageError(
            "nothing to record: give --pain-before, --pain-after, --borg, --supervised-by, "
            "--notes or --adverse"
        )
    form = parse(AnnotationForm, data)
    with transaction(args) as db:
        session = resolve_session(db, args.session)
        note = annotate(db, session, form, now=now())
    print(f"session {session}:")
    for line in text.annotation(note):
        print(f"  {line}")
    return ExitCode.OK


# --- measures ----------------------------------------------------------------------------------


def cmd_measures_add(args: argparse.Namespace) -> int:
    from treadctl.clinic.forms import MeasureForm, parse  # noqa: PLC0415
    from treadctl.clinic.people import add_measure  # noqa: PLC0415

    data = {
        "person": args.person,
        "name": args.name,
        "value": args.value,
        "unit": args.unit or "",
        "measured_on": args.on or now().astimezone().date(),
        "notes": args.notes or "",
    }
    form = parse(MeasureForm, data)
    with transaction(args) as db:
        measure = add_measure(db, form)
    print(f"{measure.person_id}: {text.measure(measure)}")
    return ExitCode.OK


def cmd_measures_list(args: argparse.Namespace) -> int:
    from treadctl.clinic.people import list_measures  # noqa: PLC0415

    with transaction(args) as db:
        found = list_measures(db, args.person)
    if args.json:
        print_json(found)
        return ExitCode.OK
    if not found:
        print(f"no measures of {args.person}")
    for m in found:
        print(text.measure(m))
    return ExitCode.OK


# --- report, fit -------------------------------------------------------------------------------


def _rendered(fmt: str, args: argparse.Namespace) -> bytes | str:
    from treadctl.clinic.record import person_record  # noqa: PLC0415

    with transaction(args) as db:
        record = person_record(db, args.person, now=now())
    if fmt == "html":
        from treadctl.clinic.report import render_html  # noqa: PLC0415 - Jinja2, matplotlib

        return render_html(record, names=args.names)
    if fmt == "pdf":
        from treadctl.clinic.report import render_pdf  # noqa: PLC0415

        return render_pdf(record, names=args.names)
    from treadctl.clinic.exports import person_document, write_csv  # noqa: PLC0415

    if fmt == "csv":
        out = io.StringIO()
        write_csv(record, out, names=args.names)
        return out.getvalue()
    return json.dumps(person_document(record, names=args.names), indent=1) + "\n"


def _refuse_terminal(what: str, out: Path | None) -> None:
    if out is None and sys.stdout.isatty():
        raise UsageError(f"{what} is binary: give --out FILE, or redirect the output")


def cmd_report(args: argparse.Namespace) -> int:
    fmt: str = args.format or _format_of(args.out)
    if fmt == "pdf":
        _refuse_terminal("a PDF report", args.out)
    write_output(_rendered(fmt, args), args.out)
    return ExitCode.OK


def _format_of(out: Path | None) -> str:
    """From --out's suffix (report.pdf), else HTML."""
    suffix = "" if out is None else out.suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "html"


def cmd_fit(args: argparse.Namespace) -> int:
    from treadctl.clinic.fit import FitDocumentError, fit_bytes  # noqa: PLC0415

    with transaction(args) as db:
        document = session_document(db, args.session)
    try:
        data = fit_bytes(document)
    except FitDocumentError as exc:
        raise ConflictError(
            f"session {args.session!r}: no FIT file from its record: {exc}"
        ) from exc
    write_output(data, args.out)
    return ExitCode.OK


def add_parsers(sub: Subparsers) -> None:
    p = clinic_parser(
        sub, "annotate", cmd_annotate, "after a session: pain, exertion, adverse events"
    )
    p.add_argument("session", metavar="SESSION", help="a session id, or its unique beginning")
    p.add_argument("--pain-before", type=int, metavar="N", help="pain before, 0-10")
    p.add_argument("--pain-after", type=int, metavar="N", help="pain after, 0-10")
    p.add_argument("--borg", type=int, metavar="N", help="exertion on Borg's scale, 6-20")
    p.add_argument("--supervised-by", metavar="NAME", help="who supervised the session")
    p.add_argument("--notes", metavar="TEXT", help="replaces the session's notes")
    p.add_argument(
        "--adverse",
        action="append",
        default=[],
        metavar="CATEGORY:TEXT",
        help=ADVERSE_HELP,
    )

    measures = command_group(sub, "measures", "a person's outcome measures over time")
    p = measures("add", cmd_measures_add, "record an outcome measure")
    p.add_argument("person", metavar="PERSON", type=person_id)
    p.add_argument("name", metavar="NAME", help=f"the measure: usually {USUAL_MEASURES}")
    p.add_argument("value", metavar="VALUE", help="a number")
    p.add_argument("--unit", metavar="U", help="e.g. s, m/s, m, points")
    p.add_argument("--on", type=day, metavar="YYYY-MM-DD", help="when measured (default: today)")
    p.add_argument("--notes", metavar="TEXT")
    p = measures("list", cmd_measures_list, "a person's measures, oldest first")
    p.add_argument("person", metavar="PERSON", type=person_id)
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")

    p = clinic_parser(
        sub, "report", cmd_report, "a person's report (HTML, PDF) or export (CSV, JSON)"
    )
    p.add_argument("person", metavar="PERSON", type=person_id)
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="html (default; or from --out's suffix), pdf, csv (one row a session), json (all)",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--names", action="store_true", help="name the person (else the pseudonym)")

    p = clinic_parser(sub, "fit", cmd_fit, "a session as a FIT file (Garmin Connect, Strava)")
    p.add_argument("session", metavar="SESSION", help="a session id, or its unique beginning")
    p.add_argument("--out", type=Path, metavar="FILE.fit", required=True)
