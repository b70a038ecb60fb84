"""`treadctl programs list|show|validate|schema`.

Exit codes (docs/cli.md): 0 ok; 2 bad usage or configuration, or a program not valid on the
configured device.
"""

from __future__ import annotations

import argparse
import sys

from treadctl.cli_support import (
    ExitCode,
    Subparsers,
    UsageError,
    add_config_option,
    load_config,
    parse_params,
)
from treadctl.config import Settings
from treadctl.core.durations import format_clock
from treadctl.core.program import Program, format_duration
from treadctl.core.timeline import DeviceProfile, Step, Timeline, build_timeline
from treadctl.core.validation import check_program
from treadctl.devices import device_profile
from treadctl.programs.library import ProgramFileError, ProgramLibrary, json_schema


def _library(settings: Settings) -> ProgramLibrary:
    library = ProgramLibrary(settings.programs.directory)
    for error in library.errors:
        print(f"treadctl: warning: {error}", file=sys.stderr)
    return library


def _describe_device(profile: DeviceProfile) -> str:
    return (
        f"{profile.driver} driver, retro_mode {profile.retro_mode}; speed caps forward "
        f"{profile.max_speed_forward_kmh:g} / backward {profile.max_speed_backward_kmh:g} km/h; "
        f"ramps {profile.max_accel_mps2:g} m/s²"
    )


def _step_label(step: Step) -> str:
    return step.phase.label if step.phase else step.name


def _speed(step: Step) -> str:
    if abs(step.from_kmh - step.speed_kmh) < 1e-9:
        return f"{step.speed_kmh:.2f}"
    return f"{step.from_kmh:.2f}→{step.speed_kmh:.2f}"


def render_timeline(timeline: Timeline) -> str:
    p = timeline.program
    lines = [f"{p.name}: {p.title}"]
    if p.source:
        lines.append(f"source: {' '.join(p.source.split())}")
    if p.intended_use:
        lines.append(f"intended use: {p.intended_use}")
    if p.plan:
        lines.append(f"plan: {p.plan.sessions_per_week} sessions a week for {p.plan.weeks} weeks")
    for name, param in p.parameters.items():
        value = timeline.parameters[name]
        marker = " (the program's default)" if value == param.default else ""
        lines.append(
            f"parameter {name} = {value:g} {param.unit}{marker}, "
            f"range {param.min:g}-{param.max:g}: {param.description}"
        )
    lines.append(f"device: {_describe_device(timeline.profile)}")
    lines.append("")
    header = (
        f"{'#':>3}  {'start':>7}  {'length':>8}  {'step':<40} {'walk':<8} {'belt':<7} "
        f"{'km/h':<11} {'incline':>7}  cue"
    )
    lines.append(header)
    for i, step in enumerate(timeline.steps, 1):
        lines.append(
            f"{i:>3}  {format_clock(step.start_us / 1e6):>7}  "
            f"{format_duration(step.duration_us / 1e6):>8}  "
            f"{_step_label(step)[:40]:<40} {step.walk.value:<8} {step.belt.value:<7} "
            f"{_speed(step):<11} {step.incline_pct:>6.1f}%  {step.cue or ''}"
        )
    lines.append("")
    lines.append(
        f"total {format_duration(timeline.total_s)}, {timeline.distance_m():.0f} m "
        f"({len(timeline.instances)} phase runs, {len(timeline.steps) - len(timeline.instances)} "
        "inserted steps: countdowns, standstills, ramps to zero)"
    )
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    settings = load_config(args.config_path)
    profile = device_profile(settings)
    library = _library(settings)
    print(f"{'name':<22} {'length':>8}  {'plan':<10} title")
    for name in library.names():
        entry = library.entries[name]
        program = entry.program
        timeline = build_timeline(program, profile)
        plan = f"{program.plan.sessions_per_week}/wk×{program.plan.weeks}" if program.plan else "-"
        flag = "" if not check_program(program, profile) else "  [not valid on this device]"
        origin = "" if entry.origin == "built-in" else f"  ({entry.origin})"
        length = format_duration(timeline.total_s)
        print(f"{name:<22} {length:>8}  {plan:<10} {program.title}{origin}{flag}")
    return ExitCode.OK


def _load(args: argparse.Namespace, settings: Settings) -> Program:
    try:
        return _library(settings).get(args.program).program
    except ProgramFileError as exc:
        raise UsageError(str(exc)) from exc


def cmd_show(args: argparse.Namespace) -> int:
    settings = load_config(args.config_path)
    program = _load(args, settings)
    params = parse_params(args.param or [])
    profile = device_profile(settings)
    problems = check_program(program, profile, params)
    try:
        timeline = build_timeline(program, profile, params)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(render_timeline(timeline))
    for problem in problems:
        print(f"NOT VALID on this device: {problem}")
    return ExitCode.USAGE if problems else ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    settings = load_config(args.config_path)
    params = parse_params(args.param or [])
    try:
        program = _library(settings).get(args.program).program
    except ProgramFileError as exc:
        for line in str(exc).splitlines():
            print(f"treadctl: {line}", file=sys.stderr)
        return ExitCode.USAGE
    profile = device_profile(settings)
    problems = check_program(program, profile, params)
    if problems:
        for problem in problems:
            print(f"treadctl: {args.program}: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    timeline = build_timeline(program, profile, params)
    print(
        f"{args.program}: program {program.name} is valid for this device "
        f"({_describe_device(profile)}): {format_duration(timeline.total_s)}, "
        f"{timeline.distance_m():.0f} m"
    )
    return ExitCode.OK


def cmd_schema(args: argparse.Namespace) -> int:  # noqa: ARG001 - same signature as the others
    sys.stdout.write(json_schema())
    return ExitCode.OK


def add_parser(sub: Subparsers) -> None:
    programs = sub.add_parser("programs", help="list, show and validate interval programs")
    actions = programs.add_subparsers(dest="programs_command", required=True, metavar="ACTION")

    def params(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--param",
            action="append",
            metavar="NAME=VALUE",
            help="a per-session parameter, e.g. comfortable_backward_kmh=1.2 (repeatable)",
        )

    p = actions.add_parser("list", help="the built-in and your own programs")
    add_config_option(p)
    p.set_defaults(func=cmd_list)
    p = actions.add_parser(
        "show", help="the timeline a program expands to on the configured device"
    )
    p.add_argument("program", help="a program name, or a .toml file")
    add_config_option(p)
    params(p)
    p.set_defaults(func=cmd_show)
    p = actions.add_parser("validate", help="check a program file against the configured device")
    p.add_argument("program", help="a .toml file (or a program name)")
    add_config_option(p)
    params(p)
    p.set_defaults(func=cmd_validate)
    p = actions.add_parser("schema", help="print the JSON Schema of program files (for editors)")
    p.set_defaults(func=cmd_schema)
