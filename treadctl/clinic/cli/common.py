"""What the clinic's commands share: the `--config`/`--database` options, opening the database
for one transaction, the clock, the program library, and the clinic's errors as exit codes.

The clinic's modules (SQLAlchemy, Alembic) are imported when a command runs, not when the parser
is built: `treadctl --help` stays fast, and an install without the `clinic` extra gets
`MissingExtraError` naming it (exit 1) only from these commands.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from treadctl.cli_support import (
    CommandError,
    Handler,
    Subparsers,
    UsageError,
    add_config_option,
    load_config,
)
from treadctl.clinic.errors import ClinicError, FormError
from treadctl.core.person import PersonError, check_person_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from treadctl.clinic.database import Database
    from treadctl.config import Settings
    from treadctl.core.program import Program

ClinicHandler: TypeAlias = Callable[[argparse.Namespace], int]
DATABASE_HELP = (
    "clinic database URL, sqlite:///path/clinic.db or postgresql://user@host/db "
    "(default: the configuration's clinic.database, else the service's own SQLite file)"
)


def now() -> datetime:
    """The clinic's clock: aware UTC, as the service stamps its rows."""
    return datetime.now(UTC)


def add_database_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(
        parser, "TOML configuration (default: $TREADCTL_CONFIG); gives clinic.database"
    )
    parser.add_argument("--database", metavar="URL", help=DATABASE_HELP)


def database_url(args: argparse.Namespace) -> str:
    """`--database`, else the configuration's `clinic.database`, else the default file. A bad
    configuration is an error even with `--database`: it is read for the programs too."""
    configured = settings(args).clinic.database
    if args.database:
        return str(args.database)
    if configured:
        return configured
    from treadctl.clinic.database import default_url  # noqa: PLC0415 - needs the clinic extra

    return default_url()


def settings(args: argparse.Namespace) -> Settings:
    cached: Settings | None = getattr(args, "_settings", None)
    if cached is None:
        cached = load_config(args.config_path)
        args._settings = cached  # noqa: SLF001 - read once per command
    return cached


def programs(args: argparse.Namespace) -> dict[str, Program]:
    """The built-in programs and the configured directory's, by name."""
    from treadctl.programs.library import ProgramLibrary  # noqa: PLC0415

    library = ProgramLibrary(settings(args).programs.directory)
    return {name: entry.program for name, entry in library.entries.items()}


@contextmanager
def clinic_database(args: argparse.Namespace) -> Iterator[Database]:
    """The clinic database, migrated; closed when the block ends."""
    from treadctl.clinic.database import open_database  # noqa: PLC0415

    database = open_database(database_url(args))
    try:
        yield database
    finally:
        database.close()


@contextmanager
def transaction(args: argparse.Namespace) -> Iterator[Session]:
    """The clinic database for one transaction: committed when the block ends, rolled back
    (nothing changed) if it raises."""
    with clinic_database(args) as database, database.session() as session:
        yield session


def clinic_command(handler: ClinicHandler) -> Handler:
    """The clinic's errors as the CLI's: bad input exit 2, a refusal or an unusable database
    (or output file) exit 1. The message names the field, or says what was refused."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # every open migrates; a command's output is not the place for Alembic's steps
            logging.getLogger("alembic").setLevel(logging.WARNING)
        from treadctl.clinic.database import DatabaseError  # noqa: PLC0415

        try:
            return handler(args)
        except FormError as exc:
            raise UsageError(str(exc)) from exc
        except (ClinicError, DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        except BrokenPipeError:
            raise  # `treadctl people list | head`: the reader left, not a failure
        except OSError as exc:
            raise CommandError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc

    return run


def clinic_parser(
    parent: Subparsers, name: str, func: ClinicHandler, help_: str
) -> argparse.ArgumentParser:
    """A command on the clinic database: the database options, its errors as exit codes."""
    p = parent.add_parser(name, help=help_, description=help_)
    add_database_options(p)
    p.set_defaults(func=clinic_command(func))
    return p


def command_group(
    sub: Subparsers, name: str, help_: str
) -> Callable[[str, ClinicHandler, str], argparse.ArgumentParser]:
    """`treadctl NAME ACTION …`: adds NAME and returns what adds each of its actions."""
    group = sub.add_parser(name, help=help_)
    actions = group.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
    return functools.partial(clinic_parser, actions)


# --- argument types ----------------------------------------------------------------------------


def person_id(text: str) -> str:
    try:
        return check_person_id(text)
    except PersonError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number from 1 up, not {value}")
    return value


def by_whom(text: str) -> str:
    """Who decides (a therapist's name or initials), as the forms take a name."""
    text = text.strip()
    if not 1 <= len(text) <= 200:
        raise argparse.ArgumentTypeError("who decides: 1-200 characters")
    return text


# --- output ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Dataclasses, dates and tuples as JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    json.dump(plain(value), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


def numbers(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items()) or "-"


def local_day(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d")


def local_minute(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def write_output(data: bytes | str, out: Path | None) -> None:
    """To `out`, else to stdout."""
    if out is None:
        if isinstance(data, str):
            sys.stdout.write(data)
            return
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    raw = data.encode() if isinstance(data, str) else data
    out.write_bytes(raw)
    print(f"wrote {out} ({len(raw)} bytes)", file=sys.stderr)
