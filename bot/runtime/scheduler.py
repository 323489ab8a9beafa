"""Scheduled jobs (APScheduler 3) with a persistent job store in the bot's own database.

Jobs (stable ids; times in ``timezone``, Europe/Helsinki, so daylight saving
changes move nothing: 08:00 stays 08:00 local):

- ``weekly_digests``: ``CronTrigger`` on ``schedule.weekly_day`` at
  ``schedule.weekly_time`` (default Monday 08:00): each team's digest of the
  previous ISO week to the team's chats.
- ``monthly_summaries``: a working-day cron at ``schedule.monthly_time``
  (default 09:00) that posts the previous month's summaries only on the first
  working day of the month (Finnish public holidays skipped, see
  ``digests.periods.first_working_day``). A daily check rather than a computed
  date keeps the trigger a plain cron that the job store can compare.
- ``escalation_check``: every ``schedule.escalation_check_minutes``: reminders
  for unacknowledged § 48 notices and re-posts of notices that did not get through.
- ``delivery_retries``: every few minutes: failed digest deliveries that are due.
- ``draft_reminders``: idle drafts (as before).
- ``shift_reminders``: every 5 minutes on weekdays, the end-of-shift prompts of the
  workers who asked for one (``/muistutus 16:00``); holidays are skipped in the service.
- ``retention`` (daily 03:15) and ``quiet_nudges`` (weekdays 10:00): data care, see
  ``bot.datacare``.
- ``planner_statistics`` (daily 03:45, after retention has deleted what it deletes):
  SQLite's planner statistics (``storage.planner.refresh_statistics``), without which
  the weekly digest's queries walk each team's whole history. Nothing on PostgreSQL.

Every job has ``coalesce=True``, ``max_instances=1`` and
``misfire_grace_time = schedule.misfire_grace_minutes``. The job store
(``SQLAlchemyJobStore``, table ``apscheduler_jobs``) keeps each job's next run
time, so a bot that was down at 08:00 finds Monday's run still due when it comes
back and runs it once (within the grace time; after it the run is skipped and
logged). That only works if a restart does not overwrite the stored run time:
``HavaintoScheduler.start`` starts paused, keeps each stored job whose trigger
is unchanged (only its options are updated) and replaces the others.

The job store pickles references to the job functions, so they are module-level
functions that find the running bot through ``register``. Several processes may
share one database and therefore one job store; APScheduler does not coordinate
them, so each may run a due job: the delivery ledger and the conditional updates
of the escalation check make the second run post nothing. Instances that run
different transports (one Telegram, one Matrix) each post on their own: the job's
deliveries on another transport are handed over and taken by that instance's
``delivery_retries`` run (``bot.delivery``), and § 48 notices and reminders by its
``escalation_check`` (``bot.escalation``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.runtime.jobs import (
    DEFAULT_INSTANCE,
    delivery_retry_job,
    draft_reminder_job,
    escalation_check_job,
    monthly_summary_job,
    planner_statistics_job,
    quiet_nudge_job,
    register,
    retention_job,
    shift_reminder_job,
    unregister,
    weekly_digest_job,
)

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger("havainto.scheduler")

REMINDER_INTERVAL_MINUTES = 10
SHIFT_REMINDER_MINUTES = 5
RETRY_INTERVAL_MINUTES = 5
PLANNER_STATISTICS_TIME = (3, 45)
RETENTION_TIME = (3, 15)
NUDGE_TIME = (10, 0)
JOBS_TABLE = "apscheduler_jobs"
# --- building the scheduler ------------------------------------------------------------


def sync_url(url: str) -> str:
    """The bot's (async) database URL with a synchronous driver, for APScheduler's job store."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def job_specs(runtime: Runtime) -> list[dict[str, Any]]:
    """The jobs this configuration wants: id, function, trigger."""
    config = runtime.config
    schedule = config.schedule
    zone = config.timezone
    weekly_hour, weekly_minute = (int(x) for x in schedule.weekly_time.split(":"))
    monthly_hour, monthly_minute = (int(x) for x in schedule.monthly_time.split(":"))
    return [
        {
            "id": "weekly_digests",
            "func": weekly_digest_job,
            "trigger": CronTrigger(
                day_of_week=schedule.weekly_day,
                hour=weekly_hour,
                minute=weekly_minute,
                timezone=zone,
            ),
        },
        {
            "id": "monthly_summaries",
            "func": monthly_summary_job,
            "trigger": CronTrigger(
                day_of_week="mon-fri", hour=monthly_hour, minute=monthly_minute, timezone=zone
            ),
        },
        {
            "id": "escalation_check",
            "func": escalation_check_job,
            "trigger": IntervalTrigger(minutes=schedule.escalation_check_minutes, timezone=zone),
        },
        {
            "id": "delivery_retries",
            "func": delivery_retry_job,
            "trigger": IntervalTrigger(minutes=RETRY_INTERVAL_MINUTES, timezone=zone),
        },
        {
            "id": "draft_reminders",
            "func": draft_reminder_job,
            "trigger": IntervalTrigger(minutes=REMINDER_INTERVAL_MINUTES, timezone=zone),
        },
        {
            "id": "shift_reminders",
            "func": shift_reminder_job,
            "trigger": CronTrigger(
                day_of_week="mon-fri", minute=f"*/{SHIFT_REMINDER_MINUTES}", timezone=zone
            ),
        },
        {
            "id": "planner_statistics",
            "func": planner_statistics_job,
            "trigger": CronTrigger(
                hour=PLANNER_STATISTICS_TIME[0], minute=PLANNER_STATISTICS_TIME[1], timezone=zone
            ),
        },
        # Data care (bot.datacare): retention daily, nudges to quiet workers on weekdays.
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


def _same_trigger(a: BaseTrigger, b: BaseTrigger) -> bool:
    return (
        type(a) is type(b)
        and str(a) == str(b)
        and str(getattr(a, "timezone", "")) == str(getattr(b, "timezone", ""))
    )


class HavaintoScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An ``AsyncIOScheduler`` that brings the stored jobs in line with the config at start
    without losing a run that was due while the bot was down."""

    def __init__(self, runtime: Runtime, instance: str = DEFAULT_INSTANCE) -> None:
        config = runtime.config
        self._store = SQLAlchemyJobStore(url=sync_url(config.database.url), tablename=JOBS_TABLE)
        super().__init__(
            timezone=config.timezone,
            jobstores={"default": self._store},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": config.schedule.misfire_grace_minutes * 60,
            },
        )
        self.runtime = runtime
        self.instance = instance

    def start(self, paused: bool = False) -> None:
        register(self.runtime, self.instance)
        super().start(paused=True)
        self.ensure_jobs()
        if not paused:
            self.resume()

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait=wait)
        unregister(self.runtime, self.instance)

    def ensure_jobs(self) -> None:
        grace = self.runtime.config.schedule.misfire_grace_minutes * 60
        for spec in job_specs(self.runtime):
            next_run: datetime | None = None
            try:
                stored = self.get_job(spec["id"])
            except LookupError:
                # Stored by a version whose job function lived elsewhere (the module moved):
                # the job is replaced, keeping its next run (it may be a missed one).
                stored = None
                next_run = self._stored_next_run(spec["id"])
                log.warning("job_reference_moved id=%s", spec["id"])
            if (
                stored is not None
                and stored.func is spec["func"]
                and tuple(stored.args) == (self.instance,)
                and _same_trigger(stored.trigger, spec["trigger"])
            ):
                # Keep the stored next run time: it may be a run missed while we were down.
                self.modify_job(
                    spec["id"], coalesce=True, max_instances=1, misfire_grace_time=grace
                )
                continue
            options: dict[str, Any] = {} if next_run is None else {"next_run_time": next_run}
            self.add_job(
                spec["func"],
                spec["trigger"],
                args=(self.instance,),
                id=spec["id"],
                name=spec["id"],
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=grace,
                **options,
            )
            log.info("job_scheduled id=%s", spec["id"])

    def _stored_next_run(self, job_id: str) -> datetime | None:
        """The next run time kept for ``job_id``, read without loading the job."""
        store = self._store
        with store.engine.connect() as connection:
            value = connection.execute(
                select(store.jobs_t.c.next_run_time).where(store.jobs_t.c.id == job_id)
            ).scalar_one_or_none()
        return None if value is None else datetime.fromtimestamp(float(value), UTC)


def build_scheduler(runtime: Runtime) -> HavaintoScheduler:
    return HavaintoScheduler(runtime)
