"""the enrolment guard: wrong invite codes per account, for the lockout

Five wrong invite codes (unknown, used, expired or revoked) within an hour from
one account lock that account out of enrolment for 15 minutes. The failures
live in the database, not in a process, so every instance sharing it counts
the same tries. One row per wrong code: transport, platform user id (as
``identities`` keeps it) and time; never the code. Rows older than a day are
pruned when a new one is written and by the retention job.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enrolment_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("failed_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_failures")),
    )
    with op.batch_alter_table("enrolment_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_enrolment_failures_account",
            ["transport", "external_id", "failed_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_enrolment_failures_failed_at"), ["failed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("enrolment_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrolment_failures_failed_at"))
        batch_op.drop_index("ix_enrolment_failures_account")
    op.drop_table("enrolment_failures")
