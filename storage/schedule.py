"""The scheduler's next runs (table ``scheduled_runs``): read at start, written as jobs run.

``bot.runtime.scheduler`` runs its jobs in memory (APScheduler) and keeps here, per
job, the trigger it was scheduled with and the time it runs next. Several processes
sharing the database write the same rows; the last write wins, and each process
computes the same next run from the same trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ScheduledRun


class StoredRun(NamedTuple):
    """A job's trigger as text (None: unknown, carried over) and its next run time."""

    trigger: str | None
    next_run_time: datetime | None


async def stored_runs(session: AsyncSession) -> dict[str, StoredRun]:
    """Every job's stored run, by job id."""
    rows = await session.execute(
        select(ScheduledRun.job_id, ScheduledRun.trigger, ScheduledRun.next_run_time)
    )
    return {job_id: StoredRun(trigger, at) for job_id, trigger, at in rows}


async def store_runs(session: AsyncSession, runs: Mapping[str, StoredRun]) -> None:
    """Insert or overwrite the given jobs' rows (one statement, safe against a second
    process inserting the same job at the same moment)."""
    if not runs:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(ScheduledRun)
    statement = statement.on_conflict_do_update(
        index_elements=[ScheduledRun.job_id],
        set_={
            "trigger": statement.excluded.trigger,
            "next_run_time": statement.excluded.next_run_time,
        },
    )
    await session.execute(
        statement,
        [
            {"job_id": job_id, "trigger": run.trigger, "next_run_time": run.next_run_time}
            for job_id, run in runs.items()
        ],
    )
