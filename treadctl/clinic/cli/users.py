"""`treadctl users add|list|passwd|role|disable|enable`: the dashboard's accounts, straight on
the clinic's database (how the first admin is made; afterwards an admin may use the API).

A password is read from the terminal (asked twice), or with `--password-stdin` from the first
line of standard input (for scripts and provisioning): never from the command line, where
other users of the machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from treadctl.cli_support import ExitCode, Subparsers, UsageError
from treadctl.clinic.cli.common import command_group, local_minute, now, print_json, transaction


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on: use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UsageError("password: the two did not match")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    from treadctl.clinic import accounts  # noqa: PLC0415 - needs the clinic extra

    accounts.check_username(args.username)  # before asking for a password
    password = _password(args)
    with transaction(args) as db:
        made = accounts.add_account(db, args.username, password, admin=args.admin, now=now())
    print(f"added {made.username} ({made.role})")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    from treadctl.clinic import accounts  # noqa: PLC0415

    with transaction(args) as db:
        found = accounts.list_accounts(db)
    if args.json:
        print_json(found)
        return ExitCode.OK
    if not found:
        print("no accounts: `treadctl users add NAME --admin` makes the first")
    for a in found:
        state = f"  disabled {local_minute(a.disabled)}" if a.disabled else ""
        print(f"{a.username:<24}{a.role:<10}  since {local_minute(a.created)}{state}")
    return ExitCode.OK


def cmd_passwd(args: argparse.Namespace) -> int:
    from treadctl.clinic import accounts  # noqa: PLC0415

    with transaction(args) as db:
        accounts.find(db, args.username)  # an unknown name fails before the password is asked
    password = _password(args)
    with transaction(args) as db:
        accounts.set_password(db, args.username, password)
    print(f"{args.username}: password changed; their logins ended")
    return ExitCode.OK


def cmd_role(args: argparse.Namespace) -> int:
    from treadctl.clinic import accounts  # noqa: PLC0415

    with transaction(args) as db:
        changed = accounts.set_role(db, args.username, args.role)
    print(f"{changed.username}: {changed.role}")
    return ExitCode.OK


def cmd_disable(args: argparse.Namespace) -> int:
    from treadctl.clinic import accounts  # noqa: PLC0415

    with transaction(args) as db:
        accounts.disable(db, args.username, now=now())
    print(f"{args.username}: disabled, their logins ended (within 10 s on a running service)")
    return ExitCode.OK


def cmd_enable(args: argparse.Namespace) -> int:
    from treadctl.clinic import accounts  # noqa: PLC0415

    with transaction(args) as db:
        accounts.enable(db, args.username)
    print(f"{args.username}: enabled")
    return ExitCode.OK


def add_parser(sub: Subparsers) -> None:
    action = command_group(sub, "users", "the dashboard's accounts: add, list, passwd, disable")

    def name(p: argparse.ArgumentParser) -> None:
        p.add_argument("username", metavar="NAME", help="lower-case letters, digits, . _ -")

    def stdin(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input",
        )

    p = action("add", cmd_add, "add an account (a therapist; --admin for an admin)")
    name(p)
    p.add_argument("--admin", action="store_true", help="may manage accounts and people")
    stdin(p)
    p = action("list", cmd_list, "the accounts, their roles, and which are disabled")
    p.add_argument("--json", action="store_true", help="as JSON, for scripts")
    p = action("passwd", cmd_passwd, "set an account's password (ends its logins)")
    name(p)
    stdin(p)
    p = action("role", cmd_role, "make an account a therapist or an admin")
    name(p)
    p.add_argument("role", choices=("therapist", "admin"))
    p = action("disable", cmd_disable, "no more log-ins for an account (its name stays in logs)")
    name(p)
    p = action("enable", cmd_enable, "let a disabled account log in again")
    name(p)
