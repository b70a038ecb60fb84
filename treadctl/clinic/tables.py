"""The clinic database's tables (SQLAlchemy 2 ORM), the same on SQLite and PostgreSQL.

The schema itself is created and changed only by the Alembic migrations in
`clinic/migrations/versions/`; `tests/clinic/test_database.py` checks the two agree.
Times are stored as timezone-aware UTC; JSON columns hold parameters, limits and the session's
phases, events and samples as the daemon sent them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Constraint names are fixed so that migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: SQLite keeps no zone, so one read back is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("clinic times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime}  # noqa: RUF012


class PersonRow(Base):
    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime]
    archived: Mapped[datetime | None]

    prescriptions: Mapped[list[PrescriptionRow]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )
    measures: Mapped[list[MeasureRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class PrescriptionRow(Base):
    __tablename__ = "prescriptions"
    __table_args__ = (
        CheckConstraint("sessions_per_week BETWEEN 1 AND 14", name="per_week"),
        CheckConstraint("weeks BETWEEN 1 AND 104", name="weeks"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    program: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sessions_per_week: Mapped[int]
    weeks: Mapped[int]
    start_date: Mapped[date] = mapped_column(Date)
    progression: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[datetime]
    ended: Mapped[datetime | None]

    person: Mapped[PersonRow] = relationship(back_populates="prescriptions")
    steps: Mapped[list[StepRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class StepRow(Base):
    """A progression proposal; it changes the prescription only once approved."""

    __tablename__ = "progression_steps"
    __table_args__ = (
        CheckConstraint("decision IN ('increase', 'hold', 'step_back')", name="decision"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        # one proposal per week: two proposers at once (the service's hourly run and the CLI)
        # cannot both add one
        UniqueConstraint("prescription_id", "week_start", name="uq_progression_steps_week"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prescription_id: Mapped[int] = mapped_column(
        ForeignKey("prescriptions.id", ondelete="CASCADE"), index=True
    )
    week_start: Mapped[date] = mapped_column(Date)
    decision: Mapped[str] = mapped_column(String(16))
    parameter: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[float] = mapped_column(Float)
    new_value: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided: Mapped[datetime | None]


class SessionRow(Base):
    """The clinic's copy of one session, keyed by the daemon's session id (so a record that
    arrives twice is stored once). `person_id` is not a foreign key: a session may name a person
    the clinic does not know (yet), and it is still kept."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_person_started", "person_id", "started"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    person_id: Mapped[str | None] = mapped_column(String(32))
    prescription_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescriptions.id", ondelete="SET NULL")
    )
    program: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started: Mapped[datetime]
    ended: Mapped[datetime | None]
    ended_how: Mapped[str | None] = mapped_column(String(16))
    end_cause: Mapped[str | None] = mapped_column(String(200))
    end_detail: Mapped[str | None] = mapped_column(Text)
    planned_s: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    backward_s: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float] = mapped_column(Float)
    speed_backward_avg_kmh: Mapped[float | None] = mapped_column(Float)
    speed_max_kmh: Mapped[float] = mapped_column(Float)
    heart_rate_avg_bpm: Mapped[int | None]
    heart_rate_peak_bpm: Mapped[int | None]
    deviations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # the daemon's treadctl-session document, samples and all (MBs): loaded only when read (FIT)
    document: Mapped[dict[str, Any]] = mapped_column(deferred=True)
    received: Mapped[datetime]

    annotation: Mapped[AnnotationRow | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class AnnotationRow(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint("pain_before BETWEEN 0 AND 10", name="pain_before"),
        CheckConstraint("pain_after BETWEEN 0 AND 10", name="pain_after"),
        CheckConstraint("exertion_borg BETWEEN 6 AND 20", name="borg"),
    )

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    pain_before: Mapped[int | None]
    pain_after: Mapped[int | None]
    exertion_borg: Mapped[int | None]
    supervised_by: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    adverse_events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated: Mapped[datetime]


class MeasureRow(Base):
    __tablename__ = "measures"
    __table_args__ = (Index("ix_measures_person_on", "person_id", "measured_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    measured_on: Mapped[date] = mapped_column(Date)
    notes: Mapped[str] = mapped_column(Text, default="")


class AccountRow(Base):
    """Someone who logs in to the dashboard: a therapist, or an admin who also manages accounts
    and people. Only the password's Argon2id hash is kept."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("role IN ('therapist', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime]
    disabled: Mapped[datetime | None]


class LoginRow(Base):
    """A browser's logged-in session: the cookie's token is kept only as its SHA-256, so a
    copy of the database logs nobody in."""

    __tablename__ = "logins"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime]
    seen: Mapped[datetime]


class CommandRow(Base):
    """Every command the service sent to a treadmill, who sent it and what came back: the
    audit trail, and where a session's "supervised by" comes from."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_device_sent", "device_id", "sent"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sent: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(16))
    # a start's person: deleting the person for good deletes their starts (and checks) too
    person_id: Mapped[str | None] = mapped_column(String(32), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str] = mapped_column(String(200))
