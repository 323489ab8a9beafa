"""notice deadlines: a notice of a grievance with no recorded measure is reminded once

- ``notifications.measures_reminded_at``: when the leaders were reminded that no measure
  (status) was recorded within ``escalation.measures_days`` and the notifier was told
  where the notice stands; set on every post of the entry at once, so it happens once.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "measures_reminded_at",
                storage.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("measures_reminded_at")
