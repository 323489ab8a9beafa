"""The scheduler's stored runs for tests: a bot that was down while a run fell due.

``went_down`` starts a runtime's real scheduler paused (it stores every job's trigger
and next run in ``scheduled_runs``, as a running bot does), stops it, and then moves
the stored next runs it is given, as if the bot had been down when they fell due.
"""

from __future__ import annotations

from datetime import datetime

from bot.runtime import Runtime
from bot.runtime.jobs import build_scheduler
from storage import schedule
from storage.db import Database
from storage.schedule import StoredRun


async def stored_runs(db: Database) -> dict[str, StoredRun]:
    async with db.transaction() as session:
        return await schedule.stored_runs(session)


async def went_down(runtime: Runtime, due: dict[str, datetime]) -> None:
    """The runtime's jobs were scheduled, then the bot stopped with ``due`` runs pending."""
    scheduler = build_scheduler(runtime)
    await scheduler.start(paused=True)
    await scheduler.stop()
    stored = await stored_runs(runtime.db)
    moved = {job_id: stored[job_id]._replace(next_run_time=at) for job_id, at in due.items()}
    async with runtime.db.transaction() as session:
        await schedule.store_runs(session, moved)
