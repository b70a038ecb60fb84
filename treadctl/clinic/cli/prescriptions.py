"""`treadctl prescriptions add|list|show|end|propose|steps|approve|reject`.

A prescription is checked against its program and the person's limits before it is stored. A
progression rule only proposes: `propose` judges each complete week, and a step changes the
prescription only once a therapist approves it.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from treadctl.cli_support import ExitCode, Subparsers, UsageError, parse_params
from treadctl.clinic.cli import text
from treadctl.clinic.cli.common import (
    by_whom,
    command_group,
    day,
    now,
    person_id,
    positive_int,
    print_json,
    programs,
    transaction,
)


def _progression(args: argparse.Namespace) -> dict[str, Any] | None:
    given = {
        "step_pct": args.step_pct,
        "step_back_pct": args.step_back_pct,
        "pain_rise_max": args.pain_rise,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.progression is None:
        if given:
            raise UsageError("--step-pct, --step-back-pct and --pain-rise need --progression")
        return None
    if args.progression:
        given["parameter"] = args.progression
    return given


def cmd_add(args: argparse.Namespace) -> int:
    from treadctl.clinic.forms import PrescriptionForm, parse  # noqa: PLC0415
    from treadctl.clinic.prescriptions import add_prescription  # noqa: PLC0415

    data: dict[str, Any] = {
        "person": args.person,
        "program": args.program,
        "parameters": parse_params(args.param),
        "sessions_per_week": args.per_week,
        "weeks": args.weeks,
        "start_date": args.start or date.today(),  # noqa: DTZ011 - the therapist's day
        "progression": _progression(args),
    }
    form = parse(PrescriptionForm, data)
    library = programs(args)
    with transaction(args) as db:
        made = add_prescription(db, form, library, now=now())
    print(text.prescription(made))
    print(f"  {text.rule(made.progression)}")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    from treadctl.clinic.people import get_person  # noqa: PLC0415
    from treadctl.clinic.prescriptions import list_prescriptions  # noqa: PLC0415

    with transaction(args) as db:
        if args.person is not None:
            get_person(db, args.person)  # NotFoundError names an unknown person
        found = list_prescriptions(db, args.person)
    if args.json:
        print_json(found)
    elif not found:
        print("no prescriptions")
    for p in [] if args.json else found:
        print(text.prescription(p))
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    from treadctl.clinic.prescriptions import get_prescription  # noqa: PLC0415
    from treadctl.clinic.record import adherence, list_sessions  # noqa: PLC0415
    from treadctl.clinic.steps import list_steps  # noqa: PLC0415

    with transaction(args) as db:
        found = get_prescription(db, args.id)
        sessions = list_sessions(db, person_id=found.person_id)
        steps = [
            s for s in list_steps(db, person_id=found.person_id) if s.prescription_id == args.id
        ]
    mine = [s for s in sessions if s.prescription_id == found.id]
    print(text.prescription(found))
    print(f"  {text.rule(found.progression)}")
    print(f"created {found.created:%Y-%m-%d %H:%M} UTC")
    weeks = adherence(found, sessions, today=date.today())  # noqa: DTZ011 - the clinic's day
    print("adherence:" if weeks else "adherence: the plan has not started yet")
    for w in weeks:
        print(f"  {text.week(w)}")
    print("progression steps:" if steps else "progression steps: none")
    for step in steps:
        print(f"  {text.step(step)}")
    print(f"sessions ({len(mine)}):" if mine else "sessions: none")
    if mine:
        print(f"  {text.session_header()}")
    for s in mine:
        print(f"  {text.session(s)}")
    return ExitCode.OK


def cmd_end(args: argparse.Namespace) -> int:
    from treadctl.clinic.prescriptions import end_prescription  # noqa: PLC0415

    with transaction(args) as db:
        ended = end_prescription(db, args.id, now=now())
    print(text.prescription(ended))
    return ExitCode.OK


def cmd_propose(args: argparse.Namespace) -> int:
    from treadctl.clinic.steps import propose_due  # noqa: PLC0415

    library = programs(args)
    today = args.today or date.today()  # noqa: DTZ011 - the therapist's day
    with transaction(args) as db:
        made = propose_due(db, library, today=today, now=now())
    if not made:
        print("no complete week to judge (each active prescription with a rule has its steps)")
    for s in made:
        print(text.step(s))
    if made:
        print("each takes effect once approved: treadctl prescriptions approve STEP --by NAME")
    return ExitCode.OK


def cmd_steps(args: argparse.Namespace) -> int:
    from treadctl.clinic.people import get_person  # noqa: PLC0415
    from treadctl.clinic.steps import list_steps  # noqa: PLC0415

    with transaction(args) as db:
        if args.person is not None:
            get_person(db, args.person)
        found = list_steps(db, person_id=args.person, pending=args.pending)
    if args.json:
        print_json(found)
        return ExitCode.OK
    if not found:
        print("no pending steps" if args.pending else "no progression steps")
    for s in found:
        print(text.step(s))
    return ExitCode.OK


def _decide(args: argparse.Namespace, *, approve: bool) -> int:
    from treadctl.clinic.steps import decide  # noqa: PLC0415

    library = programs(args)  # an approval is checked against the person's limits as they are
    with transaction(args) as db:
        step = decide(db, args.step, approve=approve, by=args.by, now=now(), programs=library)
    print(text.step(step))
    return ExitCode.OK


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, approve=True)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, approve=False)


def add_parser(sub: Subparsers) -> None:
    action = command_group(
        sub, "prescriptions", "a person's prescriptions and their progression steps"
    )
    p = action("add", cmd_add, "prescribe a program; it becomes the person's active one")
    p.add_argument("person", metavar="PERSON", type=person_id, help="the person's id")
    p.add_argument("program", metavar="PROGRAM", help="a program's name (treadctl programs list)")
    p.add_argument("--per-week", type=positive_int, required=True, metavar="N", help="sessions")
    p.add_argument("--weeks", type=positive_int, required=True, metavar="W")
    p.add_argument("--start", type=day, metavar="YYYY-MM-DD", help="first day (default: today)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=NUMBER",
        help="a program parameter (default: the person's saved one, else the program's)",
    )
    p.add_argument(
        "--progression",
        nargs="?",
        const="",
        metavar="PARAMETER",
        help="propose a weekly step on PARAMETER (default comfortable_backward_kmh)",
    )
    p.add_argument("--step-pct", type=float, metavar="P", help="increase a week (default 10)")
    p.add_argument("--step-back-pct", type=float, metavar="P", help="step back (default 10)")
    p.add_argument(
        "--pain-rise", type=int, metavar="N", help="pain rise that holds the step (default 2)"
    )
    p = action("list", cmd_list, "prescriptions, everyone's or one person's")
    p.add_argument("person", metavar="PERSON", type=person_id, nargs="?")
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    p = action("show", cmd_show, "one prescription: plan, adherence, steps, sessions")
    p.add_argument("id", metavar="ID", type=positive_int)
    p = action("end", cmd_end, "end a prescription (its records stay)")
    p.add_argument("id", metavar="ID", type=positive_int)
    p = action("propose", cmd_propose, "propose a progression step for each complete week")
    p.add_argument("--today", type=day, metavar="YYYY-MM-DD", help="judge as of this day")
    p = action("steps", cmd_steps, "progression steps, everyone's or one person's")
    p.add_argument("person", metavar="PERSON", type=person_id, nargs="?")
    p.add_argument("--pending", action="store_true", help="only those awaiting a decision")
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    for name, func, verb in (
        ("approve", cmd_approve, "approve a step: the prescription takes its new value"),
        ("reject", cmd_reject, "reject a step: the prescription stays as it is"),
    ):
        p = action(name, func, verb)
        p.add_argument("step", metavar="STEP", type=positive_int, help="the step's number")
        p.add_argument("--by", type=by_whom, required=True, metavar="NAME", help="who decides")
