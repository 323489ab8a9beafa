"""the current escalation status on the observation, for the monthly "still open" list

An escalation's status is its newest ``escalation_events`` row. The monthly
summary lists the region's earlier escalations that are still open; with only
the events to go by it had to look at every escalation of the region's past
(11,576 rows for Helsinki at a million rows) and find each one's newest event:
a cost that grew with the history, not with the month (bench/RESULTS.md).

``observations.escalation_status`` now keeps the newest status (``open`` when
there is none), kept up to date by triggers on ``escalation_events`` in the
same transaction as the event, whoever writes it (the bot, the CLI, the
benchmark's bulk load). ``ix_observations_escalation_status`` on
``(escalation, escalation_status, region, observed_at)`` finds the open ones
of a region, or of the whole organisation, without visiting the closed ones.
The events remain the record; the column is derived from them and rebuilt here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_observations_escalation_status"

# The newest status of observation ``{id}``, as storage.digest_queries reads it.
_NEWEST = (
    "coalesce((SELECT e.status FROM escalation_events AS e WHERE e.observation_id = {id}"
    " ORDER BY e.created_at DESC, e.id DESC LIMIT 1), 'open')"
)


def _sync(row: str) -> str:
    observation = f"{row}.observation_id"
    newest = _NEWEST.format(id=observation)
    return f"UPDATE observations SET escalation_status = {newest} WHERE id = {observation};"


_SQLITE_TRIGGERS = {
    "tr_escalation_events_status_insert": ("AFTER INSERT", [_sync("NEW")]),
    "tr_escalation_events_status_update": ("AFTER UPDATE", [_sync("OLD"), _sync("NEW")]),
    "tr_escalation_events_status_delete": ("AFTER DELETE", [_sync("OLD")]),
}

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION havainto_escalation_status_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_sync("OLD")}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_sync("NEW")}
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGER = "tr_escalation_events_status"


def upgrade() -> None:
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "escalation_status",
                sa.String(length=16),
                nullable=False,
                server_default="open",
            )
        )
    # Rebuild from the events: only escalated observations ever have any.
    op.execute(
        "UPDATE observations SET escalation_status = "
        + _NEWEST.format(id="observations.id")
        + " WHERE id IN (SELECT DISTINCT observation_id FROM escalation_events)"
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index(
            INDEX, ["escalation", "escalation_status", "region", "observed_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {_PG_TRIGGER} AFTER INSERT OR UPDATE OR DELETE"
            " ON escalation_events FOR EACH ROW"
            " EXECUTE FUNCTION havainto_escalation_status_sync()"
        )
    else:
        for name, (when, statements) in _SQLITE_TRIGGERS.items():
            body = " ".join(statements)
            op.execute(f"CREATE TRIGGER {name} {when} ON escalation_events BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_PG_TRIGGER} ON escalation_events")
        op.execute("DROP FUNCTION IF EXISTS havainto_escalation_status_sync()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # Not batch mode: on SQLite it would copy and drop the observations table, which the
    # foreign keys of escalation_events and others refuse. SQLite >= 3.35 drops a column
    # in place once no index or trigger uses it.
    op.drop_index(INDEX, table_name="observations")
    op.drop_column("observations", "escalation_status")
