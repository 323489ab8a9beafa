"""the worker's first hour: kept drafts, a default area, the end-of-shift reminder

- ``kept_drafts``: drafts a worker put aside to start another one (a new text typed
  while a question was open, or "start a new one, keep this one"); with the open draft
  in ``drafts`` a worker has at most three.
- ``people.default_area``: the area filled into the worker's new drafts (``/alue``).
- ``people.shift_reminder`` ("16:00") and ``people.shift_reminded_at``: the opt-in
  end-of-shift prompt (``/muistutus``), sent once on a working day with nothing logged.

``observations.observed_at`` (when it was seen) exists since 0001 and is what digests,
reports and exports count by; ``recorded_at`` stays the time of saving, for audit.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kept_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_kept_drafts_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_drafts")),
    )
    with op.batch_alter_table("kept_drafts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kept_drafts_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_kept_drafts_updated_at"), ["updated_at"], unique=False)
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_area", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("shift_reminder", sa.String(length=5), nullable=True))
        batch_op.add_column(
            sa.Column("shift_reminded_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("shift_reminded_at")
        batch_op.drop_column("shift_reminder")
        batch_op.drop_column("default_area")
    with op.batch_alter_table("kept_drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kept_drafts_updated_at"))
        batch_op.drop_index(batch_op.f("ix_kept_drafts_person_id"))
    op.drop_table("kept_drafts")
