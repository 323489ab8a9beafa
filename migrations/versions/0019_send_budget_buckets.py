"""the shared send budget as leaky buckets: one time per scope instead of a log of sends

``send_budget`` holds only the state of the flood limits of the last seconds (a minute
for a group), so the table is made anew rather than converted: ``tat`` (the scope's
theoretical arrival time, ``storage.send_budget``) replaces ``times``. Upgrade every
instance on the token together; an instance of the older code fails to send until it is.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _make(column: sa.Column[object]) -> None:
    op.create_table(
        "send_budget",
        sa.Column("scope", sa.String(length=128), nullable=False),
        column,
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_send_budget")),
    )


def upgrade() -> None:
    op.drop_table("send_budget")
    _make(sa.Column("tat", sa.Float(precision=53), nullable=False))


def downgrade() -> None:
    op.drop_table("send_budget")
    _make(sa.Column("times", sa.Text(), nullable=False))
