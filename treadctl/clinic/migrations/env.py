"""Alembic's environment: always given an open connection by `clinic/database.migrate`."""

from __future__ import annotations

from alembic import context

from treadctl.clinic.tables import Base

connection = context.config.attributes["connection"]
# Batch mode: SQLite changes a table by copying it, which later ALTERs need there.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
