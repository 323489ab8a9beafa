"""proposals.card_posted_at: when the proposal's card (with its move buttons) was posted to
the responsible leadership channel, so a proposal made by any path (a "proposed action",
the command line, a lead in a team chat) reaches the leaders once (``bot.knowledge``).
Proposals older than this revision count as posted: no burst of old cards at upgrade.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(
            sa.Column("card_posted_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE proposals SET card_posted_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("card_posted_at")
