"""The log of commands sent to treadmills: who, when, what, and what came back.

A session's "supervised by" and its pre-session check come from here: the account that sent
the accepted start on that treadmill shortly before the session began (ingest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from treadctl.clinic.tables import CommandRow

# A start confirmed at the treadmill (supervised starts) may begin the session this long after
# it was sent; the daemon's own confirmation window is shorter.
START_WINDOW = timedelta(minutes=10)
ACCEPTED = "ok"
NOT_LOGGED_IN = "not logged in"  # an e-stop sent from a page whose login had ended


@dataclass(frozen=True, slots=True)
class SentCommand:
    sent: datetime
    username: str
    device_id: str
    command: str
    body: dict[str, Any]
    outcome: str


def log_command(
    db: Session,
    *,
    now: datetime,
    username: str,
    device: str,
    command: str,
    body: dict[str, Any],
    outcome: str,
) -> None:
    person = body.get("person")
    db.add(
        CommandRow(
            sent=now,
            username=username[:64],
            device_id=device[:64],
            command=command[:16],
            person_id=person if isinstance(person, str) else None,
            body=body,
            outcome=outcome[:200],
        )
    )


def _view(row: CommandRow) -> SentCommand:
    return SentCommand(row.sent, row.username, row.device_id, row.command, row.body, row.outcome)


def recent(db: Session, *, device: str | None = None, limit: int = 100) -> list[SentCommand]:
    query = select(CommandRow).order_by(CommandRow.sent.desc(), CommandRow.id.desc()).limit(limit)
    if device is not None:
        query = query.where(CommandRow.device_id == device)
    return [_view(r) for r in db.scalars(query)]


def start_of(db: Session, device: str, started: datetime) -> SentCommand | None:
    """The accepted start that began a session on `device` at `started`, if the service sent it."""
    row = db.scalar(
        select(CommandRow)
        .where(
            CommandRow.device_id == device,
            CommandRow.command == "start",
            CommandRow.outcome == ACCEPTED,
            CommandRow.sent <= started + timedelta(seconds=5),  # clocks of two machines
            CommandRow.sent >= started - START_WINDOW,
        )
        .order_by(CommandRow.sent.desc(), CommandRow.id.desc())
        .limit(1)
    )
    return None if row is None else _view(row)
