"""`treadctl sessions list|show|export|plot|adherence|delete`: the recorded sessions.

Exit codes (docs/cli.md): 0 ok, 1 runtime failure (unknown session, unreadable database,
unwritable output), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TextIO

from treadctl.cli_support import (
    CommandError,
    ExitCode,
    Handler,
    Subparsers,
    add_config_option,
    load_config,
)
from treadctl.core.durations import format_clock
from treadctl.core.person import PersonError, check_person_id
from treadctl.core.program import Plan
from treadctl.store.adherence import Adherence, adherence, counts_toward_plan
from treadctl.store.delivery import delivered_at
from treadctl.store.model import Sample, SessionDetail, SessionRecord
from treadctl.store.paths import database_path
from treadctl.store.queries import get_session, list_sessions, load_samples, resolve_id
from treadctl.store.rows import delete_person
from treadctl.store.schema import StoreError, open_readonly, open_writer


def _path(args: argparse.Namespace) -> Path:
    return args.db if args.db is not None else database_path(load_config(args.config_path))


def _open(args: argparse.Namespace) -> sqlite3.Connection:
    return open_readonly(_path(args))


def _person(text: str) -> str:
    try:
        return check_person_id(text)
    except PersonError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _since(text: str) -> datetime:
    """A date (local midnight) or an ISO date-time."""
    try:
        if "T" in text or " " in text.strip():
            parsed = datetime.fromisoformat(text)
        else:
            parsed = datetime.combine(date.fromisoformat(text), time())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()  # naive: local time


def _local(ts: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone().strftime(fmt)  # local time


def _clock(seconds: float | None) -> str:
    return "-" if seconds is None else format_clock(seconds)


def _outcome(session: SessionRecord) -> str:
    if session.ended is None:
        return "running/open"
    how = session.ended_how or "ended"
    return f"{how} ({session.end_cause})" if session.end_cause and how != "finished" else how


def _summary_value(session: SessionRecord, key: str) -> Any:
    return (session.summary or {}).get(key)


# --- list --------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    with closing(_open(args)) as db:
        sessions = list_sessions(db, since=args.since, program=args.program, person=args.person)
    if args.json:
        json.dump([s.as_dict() for s in sessions], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return ExitCode.OK
    if not sessions:
        filtered = args.since or args.program or args.person
        print("no sessions recorded" + (" that match" if filtered else ""))
        return ExitCode.OK
    width = max(len("person"), *(len(s.person or "-") for s in sessions))  # ids are never cut
    print(
        f"{'id':<21} {'started':<16}  {'program':<24} {'person':<{width}} {'length':>8} "
        f"{'distance':>9} {'backward':>8}  ended"
    )
    for s in sessions:
        distance = _summary_value(s, "distance_m")
        shown = "-" if distance is None else f"{distance:.0f} m"
        print(
            f"{s.id:<21} {_local(s.started):<16}  {s.program[:24]:<24} "
            f"{s.person or '-':<{width}} {_clock(s.duration_s):>8} {shown:>9} "
            f"{_clock(_summary_value(s, 'backward_s')):>8}  {_outcome(s)}"
        )
    return ExitCode.OK


# --- show --------------------------------------------------------------------------------------


def _describe_session(s: SessionRecord) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in s.parameters.items())
    lines = [
        f"session   {s.id}",
        f"program   {s.program}" + (f" ({params})" if params else ""),
        f"person    {s.person or '-'}",
        f"device    {s.device_id} ({s.driver} driver)",
    ]
    if s.plan_sessions_per_week and s.plan_weeks:
        lines.append(f"plan      {s.plan_sessions_per_week} a week for {s.plan_weeks} weeks")
    if s.planned_s is not None:
        lines.append(f"planned   {_clock(s.planned_s)}")
    lines.append(f"started   {_local(s.started, '%Y-%m-%d %H:%M:%S')} (local time)")
    if s.ended is not None:
        detail = f": {s.end_detail}" if s.end_detail else ""
        lines.append(f"ended     {_local(s.ended, '%Y-%m-%d %H:%M:%S')}, {_outcome(s)}{detail}")
    else:
        lines.append("ended     not yet (running, or left open until the daemon starts again)")
    if s.summary:
        avg, peak = s.summary.get("heart_rate_avg_bpm"), s.summary.get("heart_rate_peak_bpm")
        heart = "no heart rate" if avg is None else f"heart rate avg {avg:g} / peak {peak} bpm"
        lines.append(
            f"summary   {_clock(s.summary.get('duration_s'))} on the belt, "
            f"{s.summary.get('distance_m', 0):.0f} m, "
            f"{_clock(s.summary.get('backward_s'))} walking backward, {heart}, "
            f"{s.summary.get('samples', 0)} samples"
        )
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    with closing(_open(args)) as db:
        detail = get_session(db, resolve_id(db, args.id))
        delivered = delivered_at(db, detail.session.id)
    s = detail.session
    lines = _describe_session(s)
    if s.ended is not None:  # docs/sessions.md, "Shared with the clinic service"
        lines.append(
            "clinic    not acknowledged yet"
            if delivered is None
            else f"clinic    acknowledged {_local(delivered, '%Y-%m-%d %H:%M:%S')} (local time)"
        )
    if detail.phases:
        lines += [
            "",
            "phases",
            (
                f"  {'#':>3}  {'at':>7}  {'length':>7}  walk      belt     "
                f"{'km/h':>5}  {'incl.':>5}  label"
            ),
        ]
        for n, p in enumerate(detail.phases, 1):  # numbered in order (index is a step's)
            length = None if p.ended is None else p.ended - p.started
            lines.append(
                f"  {n:>3}  {_clock(p.started - s.started):>7}  {_clock(length):>7}  "
                f"{p.walk:<9} {p.belt:<8} {p.speed_kmh:>5.2f}  {p.incline_pct:>4.1f}%  {p.label}"
            )
    if detail.events:
        lines += ["", "events"]
        for e in detail.events:
            details = json.dumps(e.details, separators=(", ", ": ")) if e.details else ""
            lines.append(f"  {_clock(e.ts - s.started):>7}  {e.type:<18} {details}".rstrip())
    print("\n".join(lines))
    return ExitCode.OK


# --- export and plot ---------------------------------------------------------------------------


def _read_session(args: argparse.Namespace) -> tuple[str, SessionDetail, list[Sample]]:
    """The session `args.id` names (a unique beginning is enough), with its samples."""
    with closing(_open(args)) as db:
        session_id = resolve_id(db, args.id)
        return session_id, get_session(db, session_id), load_samples(db, session_id)


def cmd_export(args: argparse.Namespace) -> int:
    from treadctl.store import export  # noqa: PLC0415 - only this command needs it

    session_id, detail, samples = _read_session(args)

    def write(out: TextIO) -> None:
        if args.format == "csv":
            export.write_csv(samples, out, person=detail.session.person)
        else:
            export.write_json(detail, samples, out)

    if args.out is None:
        write(sys.stdout)
        return ExitCode.OK
    with args.out.open("w", encoding="utf-8", newline="") as out:
        write(out)
    print(f"{session_id}: {len(samples)} samples written to {args.out}", file=sys.stderr)
    return ExitCode.OK


def cmd_plot(args: argparse.Namespace) -> int:
    from treadctl.store import plot  # noqa: PLC0415 - matplotlib takes a while to import

    session_id, detail, samples = _read_session(args)
    plot.render(detail, samples, args.out)
    print(f"{session_id}: chart written to {args.out}", file=sys.stderr)
    return ExitCode.OK


# --- adherence ---------------------------------------------------------------------------------


def _stored_plan(sessions: Sequence[SessionRecord]) -> Plan | None:
    for s in reversed(sessions):  # the most recent session's plan, if the plan changed
        if s.plan_sessions_per_week and s.plan_weeks:
            return Plan(sessions_per_week=s.plan_sessions_per_week, weeks=s.plan_weeks)
    return None


def _library_plan(args: argparse.Namespace, program: str) -> Plan | None:
    from treadctl.programs.library import ProgramLibrary  # noqa: PLC0415

    entry = ProgramLibrary(load_config(args.config_path).programs.directory).entries.get(program)
    return entry.program.plan if entry else None


def _render_adherence(program: str, result: Adherence) -> list[str]:
    if not result.weeks:
        return [f"{program}: no session counts yet"]
    lines = [
        f"{program}: plan {result.sessions_per_week} sessions a week for {result.plan_weeks} "
        f"weeks, from {result.weeks[0].start} ({result.weeks[0].iso})"
        + (", in progress" if result.in_progress else ""),
        f"  {'week':<9} {'monday':<10}  sessions",
    ]
    for w in result.weeks:
        mark = "  short" if w.short else ("" if w.complete else "  (this week)")
        lines.append(f"  {w.iso:<9} {w.start}  {w.sessions}/{w.target}{mark}")
    if result.fraction is None:
        lines.append("  no complete week yet")
    else:
        short = ", ".join(w.iso for w in result.short_weeks) or "none"
        lines.append(
            f"  adherence {result.fraction:.0%} ({result.done} of {result.due} sessions due in "
            f"complete weeks); short weeks: {short}"
        )
    if result.after_plan:
        lines.append(f"  {result.after_plan} more after the plan's last week")
    return lines


def cmd_adherence(args: argparse.Namespace) -> int:
    with closing(_open(args)) as db:
        sessions = list_sessions(db, since=args.since, program=args.program, person=args.person)
    counted = [s for s in sessions if counts_toward_plan(s)]
    programs = [args.program] if args.program else sorted({s.program for s in counted} - {"manual"})
    if not programs:
        whose = f" of {args.person}" if args.person else ""
        print(f"no completed program sessions{whose} to measure against a plan")
        return ExitCode.OK
    out: list[str] = []
    missing_plan = False
    for program in programs:
        mine = [s for s in sessions if s.program == program]
        plan = _stored_plan(mine) or _library_plan(args, program)
        if plan is None:
            out.append(f"{program}: the program has no plan (sessions per week, weeks)")
            missing_plan = True
            continue
        starts = [(datetime.fromtimestamp(s.started, UTC), s.program) for s in counted]
        title = f"{program} for {args.person}" if args.person else program
        out += _render_adherence(title, adherence(starts, plan, program=program))
    print("\n".join(out))
    return ExitCode.FAILURE if missing_plan and args.program else ExitCode.OK


# --- delete ------------------------------------------------------------------------------------


def cmd_delete(args: argparse.Namespace) -> int:
    """A person's sessions out of this treadmill's store, after `--yes`; exit 1 unless all went."""
    person: str = args.person
    with closing(_open(args)) as db:
        sessions = list_sessions(db, person=person)
    if not sessions:
        print(f"no sessions of {person} recorded")
        return ExitCode.OK
    if not args.yes:
        for s in sessions:
            print(f"{s.id}  {_local(s.started)}  {s.program}  {_outcome(s)}")
        print(
            f"nothing deleted: {len(sessions)} session(s) of {person}; "
            "add --yes to delete them with their phases, events and samples",
            file=sys.stderr,
        )
        return ExitCode.FAILURE
    with closing(open_writer(_path(args))) as db:
        result = delete_person(db, person)
    print(f"deleted {len(result.deleted)} session(s) of {person}")
    if not result.checkpointed:
        print(
            "the freed pages stay in the write-ahead log until the daemon's next checkpoint",
            file=sys.stderr,
        )
    if result.still_open:
        print(
            f"not deleted, still open (running, or left by a crash until the daemon starts "
            f"again): {', '.join(result.still_open)}; delete again once they have ended",
            file=sys.stderr,
        )
        return ExitCode.FAILURE
    return ExitCode.OK


# --- wiring ------------------------------------------------------------------------------------


def _reading(command: Handler) -> Handler:
    """The store's errors, and the files' (`--out`), as command failures (exit 1)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except StoreError as exc:
            raise CommandError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise CommandError(f"session database: {exc}") from exc
        except BrokenPipeError:
            raise  # not a failure: `… export ID | head`, the reader left
        except OSError as exc:
            raise CommandError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc

    return run


def add_parser(sub: Subparsers) -> None:
    """Add `sessions` and its actions to the `treadctl` command's subparsers."""
    sessions = sub.add_parser(
        "sessions", help="list, show, export, plot and delete recorded sessions"
    )
    actions = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")

    def action(name: str, func: Handler, help_: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_)
        add_config_option(p, "TOML configuration (default: $TREADCTL_CONFIG); gives storage.path")
        p.add_argument("--db", type=Path, help="the session database (overrides the config)")
        p.set_defaults(func=_reading(func))
        return p

    def session_id(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", help="a session id, or enough of its beginning to be unique")

    p = action("list", cmd_list, "sessions in start order")
    p.add_argument("--since", type=_since, metavar="DATE", help="from this date on (YYYY-MM-DD)")
    p.add_argument("--program", metavar="NAME", help="only this program's sessions")
    p.add_argument("--person", type=_person, metavar="ID", help="only this person's sessions")
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    p = action("show", cmd_show, "one session: how it went, its phases and events")
    session_id(p)
    p = action("export", cmd_export, "one session's samples as CSV, or everything as JSON")
    session_id(p)
    p.add_argument("--format", choices=["csv", "json"], required=True)
    p.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    p = action("plot", cmd_plot, "speed, incline and heart rate over time as a PNG")
    session_id(p)
    p.add_argument("--out", type=Path, metavar="FILE.png", required=True)
    p = action("adherence", cmd_adherence, "sessions per week against the program's plan")
    p.add_argument("--program", metavar="NAME", help="one program (default: each with a plan)")
    p.add_argument("--since", type=_since, metavar="DATE", help="ignore sessions before DATE")
    p.add_argument("--person", type=_person, metavar="ID", help="only this person's sessions")
    p = action("delete", cmd_delete, "delete a person's sessions from this treadmill's store")
    p.add_argument("--person", type=_person, metavar="ID", required=True, help="the person's id")
    p.add_argument("--yes", action="store_true", help="really delete (else only list them)")
