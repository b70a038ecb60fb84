"""`treadctl clinic`: run the clinic service (docs/clinic.md). Its modules, and the packages of
the `clinic` extra, are imported only when the command runs."""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from treadctl import logs
from treadctl.cli_support import (
    ExitCode,
    Subparsers,
    UsageError,
    add_config_option,
    load_config,
)

log = structlog.get_logger("treadctl.clinic")


def cmd_clinic(args: argparse.Namespace) -> int:
    from treadctl.clinic import service  # noqa: PLC0415 - the clinic extra, when asked
    from treadctl.clinic.database import DatabaseError  # noqa: PLC0415
    from treadctl.mqtt.connection import MqttSetupError, credentials, tls_context  # noqa: PLC0415

    settings = load_config(args.config_path)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        clinic = settings.clinic.model_copy(update=overrides)
        settings = settings.model_copy(update={"clinic": clinic})
    try:
        credentials(settings.mqtt)
        tls_context(settings.mqtt)
    except MqttSetupError as exc:
        raise UsageError(str(exc)) from exc
    logs.configure(args.log_level or settings.log_level, stream=sys.stderr)
    try:
        return asyncio.run(service.run_clinic(settings, database_url=args.database))
    except (DatabaseError, service.ListenError) as exc:
        print(f"treadctl clinic: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    except Exception:
        log.exception("the clinic service stopped by an error")
        return ExitCode.FAILURE


def add_parser(sub: Subparsers) -> None:
    clinic = sub.add_parser(
        "clinic",
        help="the clinic service: people, prescriptions, every treadmill's sessions, web API",
    )
    add_config_option(clinic, "TOML configuration (default: $TREADCTL_CONFIG): [clinic], [mqtt]")
    clinic.add_argument(
        "--database", metavar="URL", help="sqlite:///FILE or postgresql://… (overrides the config)"
    )
    clinic.add_argument("--host", help="listen here (overrides clinic.host)")
    clinic.add_argument("--port", type=int, help="listen on this port (overrides clinic.port)")
    clinic.set_defaults(func=cmd_clinic)
