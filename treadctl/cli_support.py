"""What every `treadctl` subcommand shares: the exit codes, the two errors a handler raises,
where the configuration file is, per-session parameters, and running a handler.

A subcommand module offers `add_parser(subparsers)`, which sets `func` (the handler) on its
parsers; a handler returns an exit code or raises `UsageError` / `CommandError`, which `dispatch`
turns into a `treadctl: …` line on stderr and exit 2 / 1 (docs/cli.md, "Exit codes").
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterable
from enum import IntEnum
from pathlib import Path
from typing import TypeAlias

from treadctl.config import ConfigError, Settings, load_settings
from treadctl.extras import MissingExtraError

CONFIG_ENV = "TREADCTL_CONFIG"
CONFIG_HELP = f"TOML configuration (default: ${CONFIG_ENV})"

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001
Handler: TypeAlias = Callable[[argparse.Namespace], int]


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    """A runtime failure: no broker or no answer, an unknown session, an unwritable file."""
    USAGE = 2
    """Bad arguments or configuration: nothing was sent and nothing moved."""


class UsageError(Exception):
    """Bad arguments or configuration: exit 2."""


class CommandError(Exception):
    """The command could not be carried out: exit 1."""


def config_path(given: Path | None) -> Path | None:
    """`--config`, else $TREADCTL_CONFIG, else None (the embedded defaults)."""
    if given is not None:
        return given
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None


def load_config(given: Path | None) -> Settings:
    """The settings from `config_path(given)` and the environment; a bad one is a UsageError."""
    try:
        return load_settings(config_path(given))
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def add_config_option(parser: argparse.ArgumentParser, help_: str = CONFIG_HELP) -> None:
    """`--config FILE`, read as `args.config_path` (resolve it with `config_path`)."""
    parser.add_argument("--config", dest="config_path", type=Path, metavar="FILE", help=help_)


def parse_params(
    items: Iterable[str],
    option: str = "--param",
    example: str = "comfortable_backward_kmh=1.2",
) -> dict[str, float]:
    """`--param NAME=NUMBER` options as a dict; a malformed one is a UsageError."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not name.strip() or not math.isfinite(number):
            raise UsageError(f"{option} {item!r}: use NAME=NUMBER, e.g. {example}")
        out[name.strip()] = number
    return out


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen handler (`args.func`), turning its errors into messages and exit codes."""
    handler: Handler = args.func
    try:
        return int(handler(args))
    except UsageError as exc:
        print(f"treadctl: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (CommandError, MissingExtraError) as exc:  # an extra names what to install
        print(f"treadctl: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    except BrokenPipeError:  # `treadctl … | head`: the reader left
        # Python would complain again when it flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except KeyboardInterrupt:
        return ExitCode.FAILURE
