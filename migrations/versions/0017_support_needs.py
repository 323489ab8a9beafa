"""support needs: the Social Welfare Act § 11 support need of an observation (taxonomy 2026.2)

- ``observations.support_need``: one of ``flows.taxonomy.SUPPORT_NEED`` (the ten support
  needs of sosiaalihuoltolaki 1301/2014 § 11), asked under "Add details" where the
  deployment switches it on (``taxonomy.support_needs``). Nullable: rows saved before,
  or where it is not asked, have none.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on every backend: no table copy (see 0006's downgrade).
    op.add_column("observations", sa.Column("support_need", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would copy and drop the observations table, which the
    # foreign keys of other tables refuse and which would lose its triggers (0005).
    op.drop_column("observations", "support_need")
