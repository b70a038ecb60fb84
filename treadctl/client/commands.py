"""`treadctl start|stop|pause|resume|skip|estop|reset|status`: a client of a running daemon.

Exit codes (docs/cli.md): 0 the daemon answered ok; 1 it answered with an error, did not answer
within `--timeout`, or the broker could not be reached; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from treadctl.cli_support import ExitCode, Subparsers, UsageError, add_config_option, parse_params
from treadctl.client import clinic_start
from treadctl.client import render as show
from treadctl.client.transport import Retained, Target, load_target, read_status, request
from treadctl.client.watch import run_until_interrupted, watch
from treadctl.core.person import PersonError, PersonLimits, check_person_id

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 3600.0

SIMPLE_COMMANDS = {  # name: (short help, description)
    "stop": ("stop the session: ramp down", "Stop the running session: a controlled ramp-down."),
    "pause": ("pause the session", "Pause the running session: the belt slows to a stop."),
    "resume": ("resume a paused session", "Continue a paused session."),
    "skip": ("skip to the next phase", "Move the running program on to its next phase."),
    "estop": (
        "emergency stop (latched)",
        "Emergency stop: the belt stops at once and starts are refused until `treadctl reset`.",
    ),
    "reset": (
        "clear an e-stop or fault",
        "Clear a latched emergency stop or a fault once the belt is still.",
    ),
}


def _print_response(name: str, response: dict[str, Any], *, as_json: bool) -> int:
    ok, line = show.response_line(name, response)
    if as_json:
        print(json.dumps(response))
    elif ok:
        print(line)
    else:
        print(line, file=sys.stderr)
    return ExitCode.OK if ok else ExitCode.FAILURE


def _command_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.client_command != "start":
        return {}
    body: dict[str, Any] = {}
    if args.program is not None:
        body["program"] = args.program
    parameters = parse_params(args.param or [])
    if parameters:
        body["parameters"] = parameters
    try:
        if args.person is not None:
            body["person"] = check_person_id(args.person)
        if args.limit:
            given = parse_params(args.limit, "--limit", "max_speed_backward_kmh=1.5")
            if (bpm := given.get("heart_rate_max_bpm")) is not None and bpm.is_integer():
                given["heart_rate_max_bpm"] = int(bpm)
            body["limits"] = PersonLimits.from_mapping(given).as_dict()
    except PersonError as exc:
        raise UsageError(_as_option(exc)) from None
    return body


def _as_option(exc: PersonError) -> str:
    """A person error named by the option that carried it (`--limit max_incline_pct: …`)."""
    field, _, why = str(exc).partition(": ")
    if field == "person":
        return f"--person: {why}"
    name = field.removeprefix("limits").lstrip(".")
    return f"--limit {name}: {why}" if name else f"--limit: {why}"


def cmd_command(args: argparse.Namespace) -> int:
    name: str = args.client_command
    body = _command_body(args)
    target = load_target(args.config_path)
    if name == "start" and "person" in body:
        body = clinic_start.resolve(target.settings, body)
    response = asyncio.run(request(target, name, body, args.timeout))
    return _print_response(name, response, as_json=args.json)


def cmd_status(args: argparse.Namespace) -> int:
    target = load_target(args.config_path)
    if args.watch:
        return run_until_interrupted(lambda: watch(target, args.timeout, as_json=args.json))
    found = asyncio.run(read_status(target, args.timeout))
    return _show_status(target, found, args.timeout, as_json=args.json)


def _show_status(target: Target, found: Retained, timeout: float, *, as_json: bool) -> int:
    if found.state is None:
        print(
            f"{target.device}: offline: nothing retained on {target.topics.state} within "
            f"{timeout:g} s (is `treadctl run` running for this device.id and mqtt.prefix "
            f"on {target.broker}?)",
            file=sys.stderr if as_json else sys.stdout,
        )
        return ExitCode.FAILURE
    if found.availability == "offline":
        if as_json:
            print(f"{target.device}: offline (the daemon is not connected)", file=sys.stderr)
            return ExitCode.FAILURE
        summary = show.state_summary(found.state, device=target.device, availability="offline")
        summary[0] += " (the daemon is not connected; the last state it published:)"
        print("\n".join(summary))
        return ExitCode.FAILURE
    if as_json:
        print(found.state_raw)
    else:
        print(
            "\n".join(show.state_summary(found.state, device=target.device, availability="online"))
        )
    return ExitCode.OK


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT_S:g} s")
    return value


def _common(parser: argparse.ArgumentParser, *, json_help: str) -> None:
    add_config_option(
        parser,
        "the daemon's TOML configuration, for the broker and topics (default: $TREADCTL_CONFIG)",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the broker and the daemon (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--json", action="store_true", help=json_help)


def add_parser(sub: Subparsers) -> None:
    """`start`, `stop`, `pause`, `resume`, `skip`, `estop`, `reset` and `status`."""
    response_json = "print the daemon's raw JSON response"
    start = sub.add_parser(
        "start",
        help="start a program (MQTT client of the daemon)",
        description="Start a program on the running daemon, over MQTT. Without PROGRAM, the "
        "program chosen with the `select` MQTT command (Home Assistant's program selector).",
    )
    start.add_argument("program", nargs="?", metavar="PROGRAM", help="the program's name")
    start.add_argument(
        "--param",
        action="append",
        metavar="NAME=NUMBER",
        help="a per-session program parameter, e.g. comfortable_backward_kmh=1.2 (repeatable)",
    )
    start.add_argument(
        "--person",
        metavar="ID",
        help="who walks: a pseudonymous id (a-z, 0-9, '-'), recorded with the session; with a "
        "clinic database, their active prescription (or PROGRAM) and limits are sent",
    )
    start.add_argument(
        "--limit",
        action="append",
        metavar="NAME=NUMBER",
        help="the person's own limit for this session, tighter than the treadmill's: "
        "max_speed_backward_kmh, max_speed_forward_kmh, max_incline_pct, heart_rate_max_bpm "
        "(repeatable)",
    )
    _common(start, json_help=response_json)
    start.set_defaults(func=cmd_command, client_command="start")

    for name, (short, description) in SIMPLE_COMMANDS.items():
        parser = sub.add_parser(name, help=f"{short} (MQTT client)", description=description)
        _common(parser, json_help=response_json)
        parser.set_defaults(func=cmd_command, client_command=name)

    status = sub.add_parser(
        "status",
        help="show the daemon's state (MQTT client)",
        description="Show the daemon's retained state. Exit 1 when it is offline.",
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="keep printing state changes, events and telemetry until Ctrl-C",
    )
    _common(
        status,
        json_help="print the raw state payload (with --watch: one JSON object per message, "
        '{"topic": …, "payload": …})',
    )
    status.set_defaults(func=cmd_status)
