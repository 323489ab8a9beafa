"""report notes: the conclusions a lead or leader writes for a social report

- ``report_notes``: one row per piece of conclusions, for a team, a region or the whole
  organisation and a period (``2026-H2``, ``2026``, ``2026-11``), with the writer's role,
  the date and the language; printed in the report as a section of its own.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope_kind", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("author_role", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_notes")),
    )
    op.create_index(
        "ix_report_notes_scope",
        "report_notes",
        ["scope_kind", "scope_id", "period_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_report_notes_scope", table_name="report_notes")
    op.drop_table("report_notes")
