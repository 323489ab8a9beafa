"""the shared send budget: recent sends per flood-limit scope, for instances sharing a token

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_budget",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("times", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_send_budget")),
    )


def downgrade() -> None:
    op.drop_table("send_budget")
