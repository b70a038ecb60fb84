"""Dashboard accounts: who may log in, with which role, and the password check.

Passwords are kept only as Argon2id hashes (argon2-cffi's RFC 9106 low-memory profile: 64 MiB,
3 passes), so a stolen database costs an attacker that much memory per guess. Hashing takes
tens of milliseconds: callers on the event loop run these functions in a worker thread.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache

from treadctl.extras import CLINIC, MissingExtraError

try:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session
except ModuleNotFoundError as exc:  # the daemon's install has neither
    raise MissingExtraError(CLINIC, "the dashboard's accounts", exc.name) from exc

from treadctl.clinic import logins
from treadctl.clinic.convert import account as _view
from treadctl.clinic.errors import ConflictError, FormError, NotFoundError
from treadctl.clinic.tables import AccountRow
from treadctl.clinic.views import ROLES, Account

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# NIST SP 800-63B: a floor on length, no composition rules, long passphrases welcome.
PASSWORD_MIN = 10
PASSWORD_MAX = 1024


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _decoy() -> str:
    """A hash to verify against when the user name is unknown, so that the answer takes as
    long as for a wrong password and does not tell which names exist."""
    return _hasher().hash("treadctl decoy password")


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise FormError(
            "username: 1-64 characters, lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise FormError(f"password: {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if "\x00" in password:
        raise FormError("password: no NUL character")
    return password


def _row(db: Session, username: str) -> AccountRow:
    row = db.scalar(select(AccountRow).where(AccountRow.username == username.strip().lower()))
    if row is None:
        raise NotFoundError(f"account {username!r}: no such account")
    return row


def add_account(
    db: Session, username: str, password: str, *, admin: bool = False, now: datetime
) -> Account:
    name = check_username(username)
    digest = _hasher().hash(check_password(password))
    if db.scalar(select(AccountRow.id).where(AccountRow.username == name)) is not None:
        raise ConflictError(f"account {name!r}: already exists")
    row = AccountRow(
        username=name,
        password_hash=digest,
        role="admin" if admin else "therapist",
        created=now,
        disabled=None,
    )
    db.add(row)
    db.flush()
    return _view(row)


def list_accounts(db: Session) -> list[Account]:
    return [_view(r) for r in db.scalars(select(AccountRow).order_by(AccountRow.username))]


def get_account(db: Session, account_id: int) -> Account | None:
    row = db.get(AccountRow, account_id)
    return None if row is None else _view(row)


def count_accounts(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(AccountRow)) or 0


def verify(db: Session, username: str, password: str) -> Account | None:
    """The account if the password is right and the account enabled, else None (whatever
    was wrong: the caller says "wrong user name or password" either way)."""
    row = db.scalar(select(AccountRow).where(AccountRow.username == username.strip().lower()))
    try:
        _hasher().verify(row.password_hash if row is not None else _decoy(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled is not None:
        return None
    if _hasher().check_needs_rehash(row.password_hash):  # the parameters were raised since
        row.password_hash = _hasher().hash(password)
    return _view(row)


def set_password(db: Session, username: str, password: str) -> Account:
    row = _row(db, username)
    row.password_hash = _hasher().hash(check_password(password))
    logins.end_all(db, row.id)  # a new password ends every login
    return _view(row)


def set_role(db: Session, username: str, role: str) -> Account:
    if role not in ROLES:
        raise FormError(f"role: one of {', '.join(ROLES)}")
    row = _row(db, username)
    if row.role == "admin" and role != "admin":
        _keep_an_admin(db, row)
    row.role = role
    return _view(row)


def disable(db: Session, username: str, *, now: datetime) -> Account:
    """No more log-ins, and every current one ends; the account's name stays in the logs."""
    row = _row(db, username)
    if row.role == "admin" and row.disabled is None:
        _keep_an_admin(db, row)
    row.disabled = row.disabled or now
    logins.end_all(db, row.id)
    return _view(row)


def enable(db: Session, username: str) -> Account:
    row = _row(db, username)
    row.disabled = None
    return _view(row)


def _keep_an_admin(db: Session, row: AccountRow) -> None:
    others = db.scalar(
        select(func.count())
        .select_from(AccountRow)
        .where(AccountRow.role == "admin", AccountRow.disabled.is_(None), AccountRow.id != row.id)
    )
    if not others:
        raise ConflictError(f"account {row.username!r}: the last enabled admin")


def find(db: Session, username: str) -> Account:
    return _view(_row(db, username))
