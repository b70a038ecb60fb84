"""The `treadctl` command line: the argparse tree, `run`, `config check`, `sim` and `demo`.

Every subcommand registers the same way (`add_parser(subparsers)`, setting `func`), and
`cli_support.dispatch` turns a handler's errors into exit codes: 0 ok, 1 runtime failure, 2 bad
usage or configuration (docs/cli.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from pathlib import Path

import structlog

from treadctl import __version__, logs
from treadctl.cli_support import (
    ExitCode,
    Subparsers,
    UsageError,
    add_config_option,
    config_path,
    dispatch,
    load_config,
)
from treadctl.config.loader import redacted
from treadctl.extras import DEMO, MissingExtraError
from treadctl.sim import PERSONALITIES

SWITCH_INTERVAL_S = 0.001  # the daemon's GIL switch interval (Python's default: 5 ms)
ESTOP_BOX = "estop-box"  # `treadctl sim`: a button box (docs/estop.md), not a treadmill
log = structlog.get_logger(__name__)


def cmd_config_check(args: argparse.Namespace) -> int:
    path = config_path(args.config_path)
    settings = load_config(path)
    data = redacted(settings)
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(f"# effective configuration ({path or 'embedded defaults'} + TREADCTL_* environment)")
        print(_as_toml(data))
    return ExitCode.OK


def _as_toml(data: dict[str, object]) -> str:
    import tomli_w  # noqa: PLC0415 - only this command needs it

    def drop_none(value: object) -> object:
        if isinstance(value, dict):
            return {k: drop_none(v) for k, v in value.items() if v is not None}
        return value

    return tomli_w.dumps(drop_none(data))  # type: ignore[arg-type]


def cmd_sim(args: argparse.Namespace) -> int:
    if args.driver == ESTOP_BOX:
        from treadctl.sim import estop_box_console  # noqa: PLC0415

        return asyncio.run(estop_box_console.run(args.link))
    from treadctl.sim import console  # noqa: PLC0415 - keeps `treadctl --help` fast

    return asyncio.run(console.run(args.driver, args.link))


def cmd_run(args: argparse.Namespace) -> int:
    from treadctl import daemon  # noqa: PLC0415
    from treadctl.mqtt.connection import MqttSetupError, credentials, tls_context  # noqa: PLC0415

    path = config_path(args.config_path)
    settings = load_config(path)
    try:
        # Unreadable secrets or certificates are configuration errors: fail before anything moves.
        credentials(settings.mqtt)
        tls_context(settings.mqtt)
    except MqttSetupError as exc:
        raise UsageError(str(exc)) from exc
    _apply_log_level(args, settings.log_level)
    try:
        return asyncio.run(daemon.run_daemon(settings, config_path=path, on_ready=_tune_runtime))
    except Exception:
        log.exception("treadctl stopped by an error; the belt was commanded to stop")
        return ExitCode.FAILURE


def _tune_runtime(*_: object) -> None:
    """Once running (docs/performance.md): what start-up built (modules, models, programs)
    lives as long as the process, so take it out of the cyclic collector's scans (a full
    collection over it takes 20-40 ms, on the event loop); and let the event loop take the GIL
    back from the session store's thread within 1 ms instead of the default 5 ms."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from treadctl import demo  # noqa: PLC0415
    except MissingExtraError as exc:  # the demo extra brings every package the demo needs
        raise MissingExtraError(DEMO, "treadctl demo", exc.name) from exc

    settings = load_config(args.config_path)
    logs.configure(args.log_level or "WARNING", stream=sys.stderr)  # a clean display
    return asyncio.run(
        demo.run(
            settings,
            program=args.program,
            speedup=args.speedup,
            use_config_broker=args.config_path is not None and args.broker == "config",
            chart=args.chart,
        )
    )


def _apply_log_level(args: argparse.Namespace, configured: str) -> None:
    """--log-level beats the configuration (which already includes TREADCTL_LOG_LEVEL)."""
    logs.configure(args.log_level or configured, stream=sys.stderr)


def add_config_parser(sub: Subparsers) -> None:
    config = sub.add_parser("config", help="inspect the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check", help="validate and print the effective configuration (secrets redacted)"
    )
    add_config_option(check)
    check.add_argument("--format", choices=["toml", "json"], default="toml")
    check.set_defaults(func=cmd_config_check)


def add_run_parser(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="the daemon: drive the treadmill, serve MQTT (systemd)")
    add_config_option(run)
    run.set_defaults(func=cmd_run)


def add_sim_parser(sub: Subparsers) -> None:
    sim = sub.add_parser("sim", help="run a simulated treadmill on a pseudo-terminal")
    sim.add_argument("--driver", choices=[*PERSONALITIES, ESTOP_BOX], required=True)
    sim.add_argument("--link", type=Path, help="also make this symlink to the pty")
    sim.set_defaults(func=cmd_sim)


def add_demo_parser(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="simulated treadmill + embedded broker + daemon + a program; no set-up needed",
    )
    add_config_option(demo, "optional TOML file (limits are taken from it)")
    demo.add_argument(
        "--program", default="alghadir2019-knee-oa", help="a built-in or your own program"
    )
    demo.add_argument(
        "--speedup",
        type=float,
        help="program time per real second (default: about a minute in all)",
    )
    demo.add_argument(
        "--broker",
        choices=["embedded", "config"],
        default="config",
        help="with --config: use its [mqtt] broker (default) or the embedded one",
    )
    demo.add_argument(
        "--chart",
        type=Path,
        metavar="FILE.png",
        help="where to write the session's chart (default: beside the demo's session database)",
    )
    demo.set_defaults(func=cmd_demo)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree; only `run`'s when `argv` starts with it: the other subcommands'
    modules (the client's, the clinic's, the store's CLIs) cost the daemon's start 0.06-0.13 s
    (docs/performance.md, "Start to ready"), and systemd starts it as `treadctl run …`."""
    parser = argparse.ArgumentParser(
        prog="treadctl",
        description="Drive a treadmill belt in reverse for backward (retro) walking.",
    )
    parser.add_argument("--version", action="version", version=f"treadctl {__version__}")
    parser.add_argument("--log-level", help="override log_level (DEBUG, INFO, …)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if argv is not None and argv[:1] == ["run"]:
        add_run_parser(sub)
        return parser

    from treadctl.client import commands as client  # noqa: PLC0415 - keeps `--version` fast
    from treadctl.clinic import cli as clinic_cli  # noqa: PLC0415
    from treadctl.clinic import serve as clinic  # noqa: PLC0415
    from treadctl.programs import commands as programs  # noqa: PLC0415
    from treadctl.store import cli as sessions  # noqa: PLC0415

    for add_parser in (  # in the order of `treadctl --help`
        add_config_parser,
        add_run_parser,
        add_sim_parser,
        programs.add_parser,
        client.add_parser,
        sessions.add_parser,
        clinic_cli.add_parsers,
        clinic.add_parser,
        add_demo_parser,
    ):
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    level = args.log_level or os.environ.get("TREADCTL_LOG_LEVEL", "INFO")
    try:
        logs.configure(level, stream=sys.stderr)
    except ValueError:
        print(f"treadctl: unknown log level {level!r}", file=sys.stderr)
        return ExitCode.USAGE
    return dispatch(args)
