"""One progression step per prescription and week (a unique constraint).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Never edit a migration that has shipped; add the next one.
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a constraint to a table in place, Alembic copies it.
    with op.batch_alter_table("progression_steps") as batch_op:
        batch_op.create_unique_constraint(
            "uq_progression_steps_week", ["prescription_id", "week_start"]
        )


def downgrade() -> None:
    with op.batch_alter_table("progression_steps") as batch_op:
        batch_op.drop_constraint("uq_progression_steps_week", type_="unique")
