"""Logged-in browser sessions: a random token in an HttpOnly cookie, its SHA-256 in the database.

A login ends on log-out, after IDLE without a request, after LONGEST in any case, when the
account is disabled or its password changed. Each login has its own CSRF token, which every
request that changes something must echo (web/auth.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from treadctl.clinic.convert import account
from treadctl.clinic.tables import AccountRow, LoginRow
from treadctl.clinic.views import Account

IDLE = timedelta(hours=12)  # a clinic's working day: a therapist is not logged out mid-session
LONGEST = timedelta(days=7)
SEEN_EVERY = timedelta(minutes=1)  # `seen` is written at most this often, not on every request


@dataclass(frozen=True, slots=True)
class Login:
    account: Account
    csrf: str
    expires: datetime  # the idle limit as of the last request written down


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def begin(db: Session, account_id: int, *, now: datetime) -> tuple[str, Login]:
    """A new login: the cookie's token (shown once, never stored) and the login."""
    token = secrets.token_urlsafe(32)
    row = LoginRow(
        token_sha256=_digest(token),
        account_id=account_id,
        csrf=secrets.token_urlsafe(32),
        created=now,
        seen=now,
    )
    db.add(row)
    owner = db.get(AccountRow, account_id)
    assert owner is not None
    db.flush()
    return token, Login(account(owner), row.csrf, now + IDLE)


def resolve(db: Session, token: str, *, now: datetime) -> Login | None:
    """The login behind a cookie's token, or None (unknown, expired, or its account disabled)."""
    if not token or len(token) > 128:
        return None
    found = db.execute(
        select(LoginRow, AccountRow)
        .join(AccountRow, AccountRow.id == LoginRow.account_id)
        .where(LoginRow.token_sha256 == _digest(token))
    ).first()
    if found is None:
        return None
    row, owner = found[0], found[1]
    if owner.disabled is not None or now - row.seen > IDLE or now - row.created > LONGEST:
        db.delete(row)
        return None
    if now - row.seen > SEEN_EVERY:
        row.seen = now
    return Login(account(owner), row.csrf, min(row.seen + IDLE, row.created + LONGEST))


def end(db: Session, token: str) -> None:
    db.execute(delete(LoginRow).where(LoginRow.token_sha256 == _digest(token)))


def end_all(db: Session, account_id: int) -> None:
    db.execute(delete(LoginRow).where(LoginRow.account_id == account_id))


def sweep(db: Session, *, now: datetime) -> int:
    """Forget logins past their limits (the service does this hourly)."""
    result = db.execute(
        delete(LoginRow).where((LoginRow.seen < now - IDLE) | (LoginRow.created < now - LONGEST))
    )
    return int(getattr(result, "rowcount", 0) or 0)
