"""The running bot's scheduled jobs: what each does, when it runs, and its scheduler.

Each job is a coroutine function of the running bot (``Runtime``); ``job_table``
binds them to one runtime, with their triggers from its config, and
``build_scheduler`` hands them to a ``JobScheduler`` (``bot.runtime.scheduler``).
Nothing here is process-wide: two runtimes in one process (the tests run two on
one database) each have their own jobs.

Jobs (stable ids; times in ``timezone``, Europe/Helsinki, so daylight saving
changes move nothing: 08:00 stays 08:00 local):

- ``weekly_digests``: ``CronTrigger`` on ``schedule.weekly_day`` at
  ``schedule.weekly_time`` (default Monday 08:00): each team's digest of the
  previous ISO week to the team's chats.
- ``monthly_summaries``: a working-day cron at ``schedule.monthly_time``
  (default 09:00) that posts the previous month's summaries only on the first
  working day of the month (Finnish public holidays skipped, see
  ``digests.periods.first_working_day``). A daily check rather than a computed
  date keeps the trigger a plain cron whose stored run a restart can compare.
- ``escalation_check``: every ``schedule.escalation_check_minutes``: reminders
  for unacknowledged § 29 notices and re-posts of notices that did not get through.
- ``delivery_retries``: every few minutes: failed digest deliveries that are due.
- ``outbox``: every ten seconds: replies another process committed and never sent.
- ``draft_reminders``: idle drafts.
- ``shift_reminders``: every 5 minutes on weekdays: the end-of-shift prompts that are due
  (a worker's ``/muistutus`` time, working days only, nothing logged that day).
- ``retention`` (daily 03:15) and ``quiet_nudges`` (weekdays 10:00): data care, see
  ``bot.datacare``.
- ``path_news`` (daily at ``knowledge.news_time``, 15:00): each worker hears, in one
  message, what moved on the knowledge path for what they recorded or confirmed
  (``bot.knowledge``).
- ``proposal_cards`` (every 5 minutes): the cards of proposals no chat event posted (made
  on the command line, or whose post failed) to the responsible leadership channel.
- ``social_reports`` (working days at ``schedule.monthly_time``, only with ``[[reports]]``):
  each configured report of the last ended half-year or year, once it is due, to its
  leadership channel, once (``bot.reports``).
- ``planner_statistics`` (daily 03:45, after retention has deleted what it deletes):
  SQLite's planner statistics (``storage.planner.refresh_statistics``), without which
  the weekly digest's queries walk each team's whole history. Nothing on PostgreSQL.

A run missed while the bot was down is made once within
``schedule.misfire_grace_minutes`` and skipped (logged) after it; see
``bot.runtime.scheduler``. Instances that run different transports (one Telegram, one
Matrix) each post on their own: the job's deliveries on another transport are handed
over and taken by that instance's ``delivery_retries`` run (``bot.delivery``), and
§ 29 notices and reminders by its ``escalation_check`` (``bot.escalation``).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.datacare import nudge_quiet_workers, retain
from bot.runtime.scheduler import JobScheduler, ScheduledJob
from storage.planner import refresh_statistics

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger("havainto.scheduler")

REMINDER_INTERVAL_MINUTES = 10
SHIFT_REMINDER_MINUTES = 5
RETRY_INTERVAL_MINUTES = 5
OUTBOX_INTERVAL_SECONDS = 10
PLANNER_STATISTICS_TIME = (3, 45)
RETENTION_TIME = (3, 15)
NUDGE_TIME = (10, 0)


# --- the jobs ------------------------------------------------------------------------------


async def weekly_digest_job(runtime: Runtime) -> None:
    if runtime.digests is not None:
        outcomes = await runtime.digests.send_weekly()
        log.info("job_done job=weekly_digests results=%s", _summary(outcomes))


async def monthly_summary_job(runtime: Runtime) -> None:
    if runtime.digests is None:
        return
    if not runtime.digests.monthly_due_today():
        log.debug("job_skipped job=monthly_summaries reason=not_first_working_day")
        return
    outcomes = await runtime.digests.send_monthly()
    log.info("job_done job=monthly_summaries results=%s", _summary(outcomes))


async def social_report_job(runtime: Runtime) -> None:
    if runtime.reports is None:
        return
    outcomes = await runtime.reports.send_due()
    if outcomes:
        log.info("job_done job=social_reports results=%s", _summary(outcomes))


async def escalation_check_job(runtime: Runtime) -> None:
    if runtime.escalations is not None:
        await runtime.escalations.check()


async def delivery_retry_job(runtime: Runtime) -> None:
    if runtime.digests is not None:
        outcomes = await runtime.digests.retry_due()
        if outcomes:
            log.info("job_done job=delivery_retries results=%s", _summary(outcomes))


async def outbox_job(runtime: Runtime) -> None:
    """Replies another process committed and never sent (``storage.outbox``)."""
    resent = await runtime.service.resend_lost(runtime.router.transports, runtime.router.deliver)
    if resent:
        log.info("job_done job=outbox resent=%s", resent)


async def draft_reminder_job(runtime: Runtime) -> None:
    outbounds = await runtime.service.remind_idle_drafts()
    await runtime.router.deliver(outbounds)


async def shift_reminder_job(runtime: Runtime) -> None:
    """End-of-shift prompts due now (``Havainto.remind_shift_end``)."""
    outbounds = await runtime.service.remind_shift_end()
    await runtime.router.deliver(outbounds)


async def planner_statistics_job(runtime: Runtime) -> None:
    ran = await refresh_statistics(runtime.db)
    if ran is not None:
        log.info("job_done job=planner_statistics ran=%r", ran)


async def retention_job(runtime: Runtime) -> None:
    await retain(runtime.db, runtime.config.retention, runtime.service.clock())


async def quiet_nudge_job(runtime: Runtime) -> None:
    now = runtime.service.clock()
    count = await nudge_quiet_workers(runtime.db, runtime.router, runtime.config, now)
    log.info("job_done job=quiet_nudges sent=%s", count)


async def path_news_job(runtime: Runtime) -> None:
    if runtime.knowledge is None:
        return
    sent = await runtime.knowledge.send_news()
    log.info("job_done job=path_news sent=%s", sent)


async def proposal_cards_job(runtime: Runtime) -> None:
    if runtime.knowledge is None:
        return
    posted = await runtime.knowledge.post_cards()
    if posted:
        log.info("job_done job=proposal_cards posted=%s", posted)


def _summary(outcomes: Any) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return "+".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "none"


# --- when they run ---------------------------------------------------------------------


def job_table(runtime: Runtime) -> list[ScheduledJob]:
    """The jobs this runtime's configuration wants, bound to it: id, trigger, what to run."""
    schedule = runtime.config.schedule
    zone = runtime.config.timezone
    weekly_hour, weekly_minute = (int(x) for x in schedule.weekly_time.split(":"))
    monthly_hour, monthly_minute = (int(x) for x in schedule.monthly_time.split(":"))
    news_hour, news_minute = (int(x) for x in runtime.config.knowledge.news_time.split(":"))

    def cron(**fields: Any) -> CronTrigger:
        return CronTrigger(timezone=zone, **fields)

    def every(minutes: float) -> IntervalTrigger:
        return IntervalTrigger(minutes=minutes, timezone=zone)

    table = [
        (
            "weekly_digests",
            cron(day_of_week=schedule.weekly_day, hour=weekly_hour, minute=weekly_minute),
            weekly_digest_job,
        ),
        (
            "monthly_summaries",
            cron(day_of_week="mon-fri", hour=monthly_hour, minute=monthly_minute),
            monthly_summary_job,
        ),
        ("escalation_check", every(schedule.escalation_check_minutes), escalation_check_job),
        ("delivery_retries", every(RETRY_INTERVAL_MINUTES), delivery_retry_job),
        ("outbox", every(OUTBOX_INTERVAL_SECONDS / 60), outbox_job),
        ("draft_reminders", every(REMINDER_INTERVAL_MINUTES), draft_reminder_job),
        # End-of-shift prompts (opt-in per worker, /muistutus 16:00), on working days.
        (
            "shift_reminders",
            cron(day_of_week="mon-fri", minute=f"*/{SHIFT_REMINDER_MINUTES}"),
            shift_reminder_job,
        ),
        (
            "planner_statistics",
            cron(hour=PLANNER_STATISTICS_TIME[0], minute=PLANNER_STATISTICS_TIME[1]),
            planner_statistics_job,
        ),
        # Data care (bot.datacare): retention daily, nudges to quiet workers on weekdays.
        ("retention", cron(hour=RETENTION_TIME[0], minute=RETENTION_TIME[1]), retention_job),
        (
            "quiet_nudges",
            cron(day_of_week="mon-fri", hour=NUDGE_TIME[0], minute=NUDGE_TIME[1]),
            quiet_nudge_job,
        ),
        # The knowledge path: what became of their observations, to each worker once a day.
        ("path_news", cron(hour=news_hour, minute=news_minute), path_news_job),
        ("proposal_cards", every(RETRY_INTERVAL_MINUTES), proposal_cards_job),
    ]
    if runtime.config.reports:
        # Scheduled social reports ([[reports]]): checked each working day, delivered once.
        table.append(
            (
                "social_reports",
                cron(day_of_week="mon-fri", hour=monthly_hour, minute=monthly_minute),
                social_report_job,
            )
        )
    return [ScheduledJob(job_id, trigger, partial(job, runtime)) for job_id, trigger, job in table]


def build_scheduler(runtime: Runtime) -> JobScheduler:
    """The runtime's scheduler: its jobs, its database, its count of running jobs."""
    return JobScheduler(
        runtime.db,
        job_table(runtime),
        timezone=runtime.config.timezone,
        misfire_grace_minutes=runtime.config.schedule.misfire_grace_minutes,
        running=runtime.jobs,
    )
