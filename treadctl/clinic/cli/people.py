"""`treadctl people add|list|show|edit|archive|delete`: the clinic's people, on its database.

A person is shown by their pseudonymous id; their name and notes (free text that often names
them) only with `--names`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from treadctl.cli_support import ExitCode, Subparsers, UsageError, parse_params
from treadctl.clinic.cli import text
from treadctl.clinic.cli.common import (
    clinic_database,
    command_group,
    local_day,
    now,
    numbers,
    person_id,
    print_json,
    transaction,
)

if TYPE_CHECKING:
    from treadctl.clinic.views import Person, PersonRecord

LIMIT_EXAMPLE = "max_speed_backward_kmh=2.5"
LIMITS_HELP = (
    "a limit tighter than the treadmills' own: max_speed_backward_kmh, max_speed_forward_kmh, "
    "max_incline_pct, heart_rate_max_bpm (repeatable)"
)
PARAM_HELP = "a saved program parameter, e.g. comfortable_backward_kmh=1.2 (repeatable)"


def _limits(args: argparse.Namespace) -> dict[str, float]:
    return parse_params(args.limit, "--limit", LIMIT_EXAMPLE)


def _shown(person: Person, *, names: bool) -> dict[str, Any]:
    data = person.as_dict()
    if not names:
        data["name"] = None
        data["notes"] = ""
    return data


def cmd_add(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {
        "id": args.id,
        "limits": _limits(args),
        "parameters": parse_params(args.param),
    }
    if args.name is not None:
        data["name"] = args.name
    if args.notes is not None:
        data["notes"] = args.notes
    from treadctl.clinic.forms import PersonForm, parse  # noqa: PLC0415 - keeps `treadctl` fast

    form = parse(PersonForm, data)
    from treadctl.clinic.people import add_person  # noqa: PLC0415 - needs the clinic extra

    with transaction(args) as db:
        person = add_person(db, form, now=now())
    print(f"added {person.id}; limits: {numbers(person.limits)}")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    from treadctl.clinic.people import list_people  # noqa: PLC0415

    with transaction(args) as db:
        people = list_people(db, archived=args.all)
    if args.json:
        print_json([_shown(p, names=args.names) for p in people])
        return ExitCode.OK
    if not people:
        print("no people" if args.all else "no active people (--all shows archived ones)")
        return ExitCode.OK
    for p in people:
        name = f"  {p.name or '-'}" if args.names else ""
        state = "" if p.active else f"  archived {local_day(p.archived)}" if p.archived else ""
        print(f"{p.id:<32}{name}  since {local_day(p.created)}  limits: {numbers(p.limits)}{state}")
    return ExitCode.OK


def _show_lines(record: PersonRecord, *, names: bool) -> list[str]:
    p = record.person
    lines = [f"person {p.display(names=names)}"]
    lines.append(f"created {local_day(p.created)}")
    if p.archived is not None:
        lines.append(f"archived {local_day(p.archived)}: no new prescriptions or sessions")
    if p.notes:
        lines.append(f"notes: {p.notes}" if names else "notes: kept (--names shows them)")
    lines.append(f"limits: {numbers(p.limits)}")
    lines.append(f"saved parameters: {numbers(p.parameters)}")
    lines.append("prescriptions:" if record.prescriptions else "prescriptions: none")
    for prescription in record.prescriptions:
        lines.append(f"  {text.prescription(prescription)}")
        lines.append(f"    {text.rule(prescription.progression)}")
    chosen = record.prescription
    if record.adherence and chosen is not None:
        lines.append(f"adherence (prescription {chosen.id}):")
        lines.extend(f"  {text.week(w)}" for w in record.adherence)
    lines.append("measures:" if record.measures else "measures: none")
    lines.extend(f"  {text.measure(m)}" for m in record.measures)
    pending = [s for s in record.steps if s.status == "pending"]
    lines.append("pending steps:" if pending else "pending steps: none")
    lines.extend(f"  {text.step(s)}" for s in pending)
    if not record.sessions:
        lines.append("sessions: none")
        return lines
    lines.append(f"sessions ({len(record.sessions)}):")
    lines.append(f"  {text.session_header()}")
    lines.extend(f"  {text.session(s)}" for s in record.sessions)
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    from treadctl.clinic.record import person_record  # noqa: PLC0415

    with transaction(args) as db:
        record = person_record(db, args.id, now=now())
    if args.json:
        print_json(
            {
                "person": _shown(record.person, names=args.names),
                "prescriptions": record.prescriptions,
                "adherence": record.adherence,
                "measures": record.measures,
                "pending_steps": [s for s in record.steps if s.status == "pending"],
                "sessions": record.sessions,
            }
        )
        return ExitCode.OK
    print("\n".join(_show_lines(record, names=args.names)))
    return ExitCode.OK


def cmd_edit(args: argparse.Namespace) -> int:
    from treadctl.clinic.forms import PersonEdit, parse  # noqa: PLC0415
    from treadctl.clinic.people import edit_person, get_person  # noqa: PLC0415

    limits, params = _limits(args), parse_params(args.param)
    changes = (args.name, args.notes, limits, params, args.clear_limits, args.no_name, args.restore)
    if not any(changes):
        raise UsageError(
            "nothing to change: give --name/--no-name, --notes, --limit, --clear-limits, "
            "--param or --restore"
        )
    with transaction(args) as db:
        before = get_person(db, args.id)
        data: dict[str, Any] = {}
        if args.name is not None or args.no_name:
            data["name"] = args.name
        if args.notes is not None:
            data["notes"] = args.notes
        if limits or args.clear_limits:  # the limits given change, the others stay
            data["limits"] = {**({} if args.clear_limits else before.limits), **limits}
        if params:
            data["parameters"] = {**before.parameters, **params}
        person = edit_person(db, args.id, parse(PersonEdit, data), restore=args.restore)
    state = "" if person.active else " (archived)"
    print(
        f"{person.id}{state}: limits: {numbers(person.limits)}; "
        f"saved parameters: {numbers(person.parameters)}"
    )
    return ExitCode.OK


def cmd_archive(args: argparse.Namespace) -> int:
    from treadctl.clinic.people import archive_person  # noqa: PLC0415
    from treadctl.clinic.prescriptions import list_prescriptions  # noqa: PLC0415

    with transaction(args) as db:
        active = [p.id for p in list_prescriptions(db, args.id) if p.active]
        archive_person(db, args.id, now=now())
    ended = f"; ended prescription {', '.join(map(str, active))}" if active else ""
    print(
        f"archived {args.id}: no new prescriptions or sessions, the records stay{ended} "
        "(`treadctl people edit --restore` brings them back)"
    )
    return ExitCode.OK


def _daemons_note(person: str) -> str:
    return (
        "the treadmills keep their own copies of the sessions: on each treadmill run "
        f"`treadctl sessions delete --person {person} --yes`"
    )


def cmd_delete(args: argparse.Namespace) -> int:
    from sqlalchemy import text as sql  # noqa: PLC0415

    from treadctl.clinic.people import delete_person, list_measures  # noqa: PLC0415
    from treadctl.clinic.prescriptions import list_prescriptions  # noqa: PLC0415
    from treadctl.clinic.record import list_sessions  # noqa: PLC0415

    person: str = args.id
    if not args.yes:
        with transaction(args) as db:
            measures = list_measures(db, person)  # NotFoundError for an unknown person
            sessions = list_sessions(db, person_id=person)
            prescriptions = list_prescriptions(db, person)
        print(
            f"{person}: {len(sessions)} session(s), {len(prescriptions)} prescription(s) with "
            f"their progression steps, {len(measures)} measure(s) in the clinic's database"
        )
        print(
            f"nothing deleted: add --yes to delete {person} and all of this for good; "
            f"{_daemons_note(person)}",
            file=sys.stderr,
        )
        return ExitCode.FAILURE
    with clinic_database(args) as database:
        with database.session() as db:
            if database.is_sqlite:  # deleted rows are overwritten, not left in free pages
                db.execute(sql("PRAGMA secure_delete = ON"))
            deleted = delete_person(db, person)
        if database.is_sqlite:  # and leave the write-ahead log too
            with database.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    print(
        f"deleted {person} for good: {deleted.sessions} session(s), "
        f"{deleted.prescriptions} prescription(s), {deleted.measures} measure(s).\n"
        f"{_daemons_note(person)}"
    )
    return ExitCode.OK


def add_parser(sub: Subparsers) -> None:
    action = command_group(sub, "people", "the clinic's people: add, list, show, edit, delete")

    def names(p: argparse.ArgumentParser) -> None:
        p.add_argument("--names", action="store_true", help="show names and notes, not only ids")

    p = action("add", cmd_add, "add a person under a pseudonymous id")
    p.add_argument("id", metavar="ID", help="pseudonymous id: 1-32 of a-z, 0-9 and '-'")
    p.add_argument("--name", help="their name (shown only with --names)")
    p.add_argument("--notes", metavar="TEXT", help="free text about the person")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=NUMBER", help=LIMITS_HELP)
    p.add_argument("--param", action="append", default=[], metavar="NAME=NUMBER", help=PARAM_HELP)
    p = action("list", cmd_list, "the active people (with --all, archived ones too)")
    p.add_argument("--all", action="store_true", help="archived people too")
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    names(p)
    p = action(
        "show",
        cmd_show,
        "one person: limits, parameters, prescriptions, adherence, measures, steps, sessions",
    )
    p.add_argument("id", metavar="ID", type=person_id)
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    names(p)
    p = action("edit", cmd_edit, "change a person's name, notes, limits or saved parameters")
    p.add_argument("id", metavar="ID", type=person_id)
    name = p.add_mutually_exclusive_group()
    name.add_argument("--name", help="their name")
    name.add_argument("--no-name", action="store_true", help="forget their name")
    p.add_argument("--notes", metavar="TEXT", help="replaces the notes")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=NUMBER", help=LIMITS_HELP)
    p.add_argument("--clear-limits", action="store_true", help="drop the limits (before --limit)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=NUMBER", help=PARAM_HELP)
    p.add_argument("--restore", action="store_true", help="bring an archived person back")
    p = action("archive", cmd_archive, "no new sessions or prescriptions; their records stay")
    p.add_argument("id", metavar="ID", type=person_id)
    p = action("delete", cmd_delete, "delete a person and everything about them, for good")
    p.add_argument("id", metavar="ID", type=person_id)
    p.add_argument("--yes", action="store_true", help="really delete (else only say what would go)")
