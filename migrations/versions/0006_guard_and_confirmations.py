"""held texts at the identifier guard, pending "saved" confirmations, observations.draft_key

``held_texts``: a typed text whose identifiers (other than a hetu, which is always
removed before anything is stored) wait for the writer's choice: remove, keep or
drop. ``pending_confirmations``: "Saved #N" messages the platform did not accept,
told at the worker's next contact. ``observations.draft_key``: the draft an entry
was saved from, so a stale Save press can say which entry it saved.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "held_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("chat_id", sa.String(length=255), nullable=False),
        sa.Column("is_private", sa.Boolean(), nullable=False),
        sa.Column("reply_to", sa.String(length=255), nullable=True),
        sa.Column("command", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_held_texts_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_texts")),
    )
    with op.batch_alter_table("held_texts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_held_texts_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_held_texts_created_at"), ["created_at"], unique=False)

    op.create_table(
        "pending_confirmations",
        sa.Column("observation_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["observation_id"],
            ["observations.id"],
            name=op.f("fk_pending_confirmations_observation_id_observations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_pending_confirmations_person_id_people")
        ),
        sa.PrimaryKeyConstraint("observation_id", name=op.f("pk_pending_confirmations")),
    )
    with op.batch_alter_table("pending_confirmations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_confirmations_person_id"), ["person_id"], unique=False
        )

    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would copy and drop the observations table, which the
    # foreign keys of other tables refuse (see 0005).
    op.drop_column("observations", "draft_key")
    op.drop_table("pending_confirmations")
    op.drop_table("held_texts")
