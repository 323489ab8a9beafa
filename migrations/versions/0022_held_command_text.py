"""held_texts.command: any command name (text), not at most 64 characters. A command is
whatever a worker types after the slash; an unknown one with an identifier in its
argument is held like any other text, and a name over 64 characters made PostgreSQL
refuse the row (found by the Telegram fuzz test, seed 220655570): the worker got the
error reply instead of the question about the identifier.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("held_texts") as batch:
        batch.alter_column(
            "command", existing_type=sa.String(length=64), type_=sa.Text(), existing_nullable=True
        )


def downgrade() -> None:
    # Held texts wait minutes for their writer's answer; a longer name is cut to fit.
    op.execute("UPDATE held_texts SET command = substr(command, 1, 64) WHERE length(command) > 64")
    with op.batch_alter_table("held_texts") as batch:
        batch.alter_column(
            "command", existing_type=sa.Text(), type_=sa.String(length=64), existing_nullable=True
        )
