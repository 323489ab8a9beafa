"""scheduled runs: each scheduled job's next run, kept by the bot instead of APScheduler

Until now APScheduler's ``SQLAlchemyJobStore`` kept the jobs in ``apscheduler_jobs``
(pickled, with textual references to module-level job functions). The scheduler now
runs its jobs in memory and keeps only what a restart needs in ``scheduled_runs``: per
job id the trigger as text and the next run time (``bot.runtime.scheduler``).

The next run times of ``apscheduler_jobs`` are carried over (its ``id`` and
``next_run_time``, seconds since the epoch, are plain columns; the pickles are not
read), with the trigger unknown (NULL): at the next start a carried-over time is kept
when the configured trigger fires at that moment, so a weekly digest missed while the
bot was down for the upgrade is still made within the grace time. ``apscheduler_jobs``
is then dropped: nothing reads it any more, and its pickles name functions that no
longer exist. (A process of the previous version still running on the database during
a rolling upgrade finds its job store gone and logs warnings until it is stopped; the
new process runs the jobs, and the delivery ledger keeps them from posting twice.)

Downgrade drops ``scheduled_runs``; the previous version's job store creates its own
table again at start and schedules every job afresh.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TABLE = "apscheduler_jobs"


def upgrade() -> None:
    runs = op.create_table(
        "scheduled_runs",
        sa.Column("job_id", sa.String(length=191), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=True),
        sa.Column("next_run_time", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_scheduled_runs")),
    )
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(OLD_TABLE):
        return
    old = sa.table(OLD_TABLE, sa.column("id", sa.String()), sa.column("next_run_time", sa.Float()))
    carried = [
        {
            "job_id": job_id,
            "trigger": None,
            "next_run_time": None if at is None else datetime.fromtimestamp(float(at), UTC),
        }
        for job_id, at in bind.execute(sa.select(old.c.id, old.c.next_run_time))
    ]
    if carried:
        op.bulk_insert(runs, carried)
    op.drop_table(OLD_TABLE)


def downgrade() -> None:
    op.drop_table("scheduled_runs")
