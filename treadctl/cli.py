"""The `treadctl` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config."""

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
from treadctl.config import ConfigError, load_settings
from treadctl.config.loader import redacted
from treadctl.sim import PERSONALITIES

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SWITCH_INTERVAL_S = 0.001  # the daemon's GIL switch interval (Python's default: 5 ms)
ESTOP_BOX = "estop-box"  # `treadctl sim`: a button box (docs/estop.md), not a treadmill
log = structlog.get_logger(__name__)


def _config_path(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    env = os.environ.get("TREADCTL_CONFIG")
    return Path(env) if env else None


def cmd_config_check(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    data = redacted(settings)
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(f"# effective configuration ({path or 'embedded defaults'} + TREADCTL_* environment)")
        print(_as_toml(data))
    return EXIT_OK


def _as_toml(data: dict[str, object]) -> str:
    import tomli_w  # noqa: PLC0415 - only this command needs it

    def drop_none(value: object) -> object:
        if isinstance(value, dict):
            return {k: drop_none(v) for k, v in value.items() if v is not None}
        return value

    return tomli_w.dumps(drop_none(data))  # type: ignore[arg-type]


def cmd_sim(args: argparse.Namespace) -> int:
    if args.driver == ESTOP_BOX:
        from treadctl.estop import box_console  # noqa: PLC0415

        return asyncio.run(box_console.run(args.link))
    from treadctl.sim import console  # noqa: PLC0415 - keeps `treadctl --help` fast

    return asyncio.run(console.run(args.driver, args.link))


def cmd_run(args: argparse.Namespace) -> int:
    from treadctl import daemon  # noqa: PLC0415
    from treadctl.mqtt.connection import MqttSetupError, credentials, tls_context  # noqa: PLC0415

    config_path = _config_path(args.config)
    try:
        settings = load_settings(config_path)
        # Unreadable secrets or certificates are configuration errors: fail before anything moves.
        credentials(settings.mqtt)
        tls_context(settings.mqtt)
    except (ConfigError, MqttSetupError) as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _apply_log_level(args, settings.log_level)
    try:
        return asyncio.run(
            daemon.run_daemon(settings, config_path=config_path, on_ready=_tune_runtime)
        )
    except Exception:
        log.exception("treadctl stopped by an error; the belt was commanded to stop")
        return EXIT_FAILURE


def _tune_runtime(*_: object) -> None:
    """Once running (docs/performance.md): what start-up built (modules, models, programs)
    lives as long as the process, so take it out of the cyclic collector's scans (a full
    collection over it takes 20-40 ms, on the event loop); and let the event loop take the GIL
    back from the session store's thread within 1 ms instead of the default 5 ms."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def cmd_demo(args: argparse.Namespace) -> int:
    from treadctl import demo  # noqa: PLC0415

    try:
        settings = load_settings(_config_path(args.config))
    except ConfigError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(args.log_level or "WARNING", stream=sys.stderr)  # a clean display
    return asyncio.run(
        demo.run(
            settings,
            program=args.program,
            speedup=args.speedup,
            use_config_broker=args.config is not None and args.broker == "config",
            chart=args.chart,
        )
    )


def _apply_log_level(args: argparse.Namespace, configured: str) -> None:
    """--log-level beats the configuration (which already includes TREADCTL_LOG_LEVEL)."""
    logs.configure(args.log_level or configured, stream=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treadctl",
        description="Drive a treadmill belt in reverse for backward (retro) walking.",
    )
    parser.add_argument("--version", action="version", version=f"treadctl {__version__}")
    parser.add_argument("--log-level", help="override log_level (DEBUG, INFO, …)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = sub.add_parser("config", help="inspect the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check", help="validate and print the effective configuration (secrets redacted)"
    )
    check.add_argument("--config", type=Path, help="TOML file (default: $TREADCTL_CONFIG)")
    check.add_argument("--format", choices=["toml", "json"], default="toml")
    check.set_defaults(func=cmd_config_check)

    run = sub.add_parser("run", help="the daemon: drive the treadmill, serve MQTT (systemd)")
    run.add_argument("--config", type=Path, help="TOML file (default: $TREADCTL_CONFIG)")
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser("sim", help="run a simulated treadmill on a pseudo-terminal")
    sim.add_argument("--driver", choices=[*PERSONALITIES, ESTOP_BOX], required=True)
    sim.add_argument("--link", type=Path, help="also make this symlink to the pty")
    sim.set_defaults(func=cmd_sim)

    from treadctl.programs import commands as programs  # noqa: PLC0415

    programs.add_parser(sub, {"help": "TOML configuration (default: $TREADCTL_CONFIG)"})

    from treadctl import client  # noqa: PLC0415
    from treadctl.store import cli as sessions  # noqa: PLC0415

    client.add_parsers(sub)
    sessions.add_parser(sub)

    demo = sub.add_parser(
        "demo",
        help="simulated treadmill + embedded broker + daemon + a program; no set-up needed",
    )
    demo.add_argument("--config", type=Path, help="optional TOML file (limits are taken from it)")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or os.environ.get("TREADCTL_LOG_LEVEL", "INFO")
    try:
        logs.configure(level, stream=sys.stderr)
    except ValueError:
        print(f"treadctl: unknown log level {level!r}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "config_path", None) is None and "config_path" in vars(args):
        args.config_path = _config_path(None)
    try:
        if args.command == "programs":
            from treadctl.programs import commands as programs  # noqa: PLC0415

            return programs.run(args)
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_FAILURE
