"""Data care jobs of the running bot: the daily retention run and the quiet-worker nudge.

``data_care_job_specs`` gives the scheduler (``bot.scheduler.job_specs``) two
daily jobs:

- ``retention`` at 03:15 local time: free text past ``retention.free_text_months``
  and drafts idle for ``retention.draft_days`` are erased
  (``storage.retention.run_retention``), with an audit row.
- ``quiet_nudges`` on weekdays at 10:00: each worker or lead quiet for
  ``reminders.quiet_days`` gets one friendly nudge in their language, unless
  ``reminders.enabled`` is false or their team has ``nudge = false``.

Like the scheduler's other jobs they are module-level functions that find the
running bot through the scheduler's registry (the job store pickles references).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

from flows.events import Message, Outbound
from flows.i18n import t
from storage import audit
from storage.retention import RetentionResult, due_nudges, mark_nudged, run_retention

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger("havainto.datacare")

RETENTION_TIME = (3, 15)
NUDGE_TIME = (10, 0)


async def retain(runtime: Runtime, now: datetime | None = None) -> RetentionResult:
    """One retention run now (the daily job's work)."""
    now = now or runtime.service.clock()
    retention = runtime.config.retention
    async with runtime.db.maintenance() as session:
        result = await run_retention(
            session, now, retention.free_text_months, retention.draft_days, actor="scheduler"
        )
    log.info(
        "retention_done texts_erased=%s answers_erased=%s drafts_erased=%s held_erased=%s",
        result.texts_erased,
        result.answers_erased,
        result.drafts_erased,
        result.held_erased,
    )
    return result


async def nudge_quiet_workers(runtime: Runtime, now: datetime | None = None) -> int:
    """Send one nudge to each quiet worker of a team that wants them; returns how many."""
    config = runtime.config
    if not config.reminders.enabled:
        return 0
    now = now or runtime.service.clock()
    teams = [team.id for team in config.teams if team.nudge]
    days = config.reminders.quiet_days
    async with runtime.db.transaction() as session:
        nudges = await due_nudges(session, now, days, teams)
        # Marked before sending: a nudge that cannot be delivered is not retried every day.
        claimed = await mark_nudged(session, [n.person_id for n in nudges], now, days)
        nudges = [n for n in nudges if n.person_id in claimed]
        if nudges:
            await audit.record(
                session, "scheduler", audit.NUDGES, f"quiet_days={days}", len(nudges), now
            )
    outbounds = [
        Outbound(
            n.transport, n.chat_id, Message(t(n.language, "nudge.quiet", "datacare", days=days))
        )
        for n in nudges
    ]
    await runtime.router.deliver(outbounds)
    for nudge in nudges:
        log.info("quiet_nudge person=%s", nudge.person_id)
    return len(nudges)


# --- scheduled jobs ------------------------------------------------------------------------


async def retention_job(instance: str = "default") -> None:
    from bot.scheduler import _runtime

    runtime = _runtime(instance)
    if runtime is not None:
        await retain(runtime)


async def quiet_nudge_job(instance: str = "default") -> None:
    from bot.scheduler import _runtime

    runtime = _runtime(instance)
    if runtime is not None:
        count = await nudge_quiet_workers(runtime)
        log.info("job_done job=quiet_nudges sent=%s", count)


def data_care_job_specs(runtime: Runtime) -> list[dict[str, Any]]:
    """The data care jobs, in the shape of ``bot.scheduler.job_specs``."""
    zone = runtime.config.timezone
    return [
        {
            "id": "retention",
            "func": retention_job,
            "trigger": CronTrigger(hour=RETENTION_TIME[0], minute=RETENTION_TIME[1], timezone=zone),
        },
        {
            "id": "quiet_nudges",
            "func": quiet_nudge_job,
            "trigger": CronTrigger(
                day_of_week="mon-fri", hour=NUDGE_TIME[0], minute=NUDGE_TIME[1], timezone=zone
            ),
        },
    ]
