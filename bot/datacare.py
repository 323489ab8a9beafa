"""Data care jobs of the running bot: the daily retention run and the quiet-worker nudge.

Two scheduled jobs of the running bot (``bot.runtime.jobs``) call them:

- ``retention`` at 03:15 local time: free text past ``retention.free_text_months``
  and drafts idle for ``retention.draft_days`` are erased
  (``storage.retention.run_retention``), with an audit row.
- ``quiet_nudges`` on weekdays at 10:00: each worker or lead quiet for
  ``reminders.quiet_days`` gets one friendly nudge in their language, unless
  ``reminders.enabled`` is false or their team has ``nudge = false``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.config import Config, RetentionConfig
from bot.router import Router
from flows.events import Message, Outbound
from flows.i18n import tn
from storage import audit
from storage.db import Database
from storage.retention import RetentionResult, due_nudges, mark_nudged, run_retention

log = logging.getLogger("havainto.datacare")


async def retain(db: Database, retention: RetentionConfig, now: datetime) -> RetentionResult:
    """One retention run at ``now`` (the daily job's work)."""
    async with db.maintenance() as session:
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


async def nudge_quiet_workers(db: Database, router: Router, config: Config, now: datetime) -> int:
    """Send one nudge to each quiet worker of a team that wants them; returns how many."""
    if not config.reminders.enabled:
        return 0
    teams = [team.id for team in config.teams if team.nudge]
    days = config.reminders.quiet_days
    async with db.transaction() as session:
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
            n.transport,
            n.chat_id,
            Message(tn(n.language, "nudge.quiet", days, "datacare", days=days)),
        )
        for n in nudges
    ]
    await router.deliver(outbounds)
    for nudge in nudges:
        log.info("quiet_nudge person=%s", nudge.person_id)
    return len(nudges)
