"""Running scheduled jobs: APScheduler 3 in memory, each job's next run kept in the database.

A ``JobScheduler`` runs a list of ``ScheduledJob`` (a stable id, an APScheduler
trigger, a coroutine function of no arguments; ``bot.runtime.jobs`` makes the bot's)
with ``coalesce=True``, ``max_instances=1`` and the misfire grace time it is given.
The jobs live in APScheduler's memory job store, so they can be any callables (the
running bot's jobs are bound to it); what must outlive a restart is kept by us in
``scheduled_runs`` (``storage.schedule``): per job, its trigger as text and its next
run time. Only APScheduler's public API is used for it:

- At start, a job whose stored trigger equals the configured one is added with the
  stored ``next_run_time`` (``add_job(..., next_run_time=...)``). A run that fell
  due while the bot was down is then still due, and APScheduler's own misfire
  handling decides: within the grace time it runs once (coalesced), after it the
  run is skipped and logged (``job_missed``). A restart with an unchanged trigger
  therefore never moves a stored run. A changed trigger (the config changed), or no
  row, gives the trigger's next fire time from now. A row carried over from
  APScheduler's old job store (migration 0008, trigger unknown) is kept when the
  configured trigger fires at that very time.
- After a run ends (``job.next_run_time`` is then the following one) the wrapper
  that runs every job writes it, before the job counts as finished; a skipped run
  (``EVENT_JOB_MISSED``, ``EVENT_JOB_MAX_INSTANCES``) is written by a listener.
  A run cut short (the process died, or a shutdown cancelled it after its grace)
  is not written: it is still due at the next start, within the grace time.

Every running job counts in the ``InFlight`` it is given (``Runtime.jobs``), so a
graceful stop waits for jobs as it waits for events. Several processes sharing one
database share the rows; APScheduler does not coordinate them, so each may run a due
job, and the jobs make a second run harmless (the delivery ledger, the conditional
updates of the escalation check).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger

from bot.inflight import InFlight
from storage import schedule
from storage.db import Database
from storage.schedule import StoredRun

log = logging.getLogger("havainto.scheduler")

# How long a stop waits for the listener's writes of skipped runs.
STOP_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class ScheduledJob:
    """A job: a stable id, when (an APScheduler trigger) and what (called with no arguments)."""

    id: str
    trigger: BaseTrigger
    run: Callable[[], Awaitable[None]]


def trigger_text(trigger: BaseTrigger) -> str:
    """The trigger as stored: its fields and its time zone, e.g.
    ``cron[day_of_week='mon', hour='8', minute='0'] Europe/Helsinki``."""
    return f"{trigger} {getattr(trigger, 'timezone', '')}".rstrip()


def first_run(
    trigger: BaseTrigger, stored: StoredRun | None, now: datetime
) -> tuple[datetime | None, str]:
    """When a job runs first after a start, and why: ``kept`` (the stored run of the same
    trigger), ``carried`` (a carried-over run the trigger fires at), else ``new``."""
    fresh: datetime | None = trigger.get_next_fire_time(None, now)
    if stored is None or stored.next_run_time is None:
        return fresh, "new"
    at = stored.next_run_time
    if stored.trigger == trigger_text(trigger):
        return at, "kept"
    if stored.trigger is None and trigger.get_next_fire_time(None, at) == at:
        return at, "carried"
    return fresh, "new"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


class JobScheduler:
    """Runs ``jobs`` on the event loop; their next runs survive a restart (module docstring)."""

    def __init__(
        self,
        db: Database,
        jobs: Sequence[ScheduledJob],
        *,
        timezone: str,
        misfire_grace_minutes: int,
        running: InFlight | None = None,
    ) -> None:
        self.db = db
        self.jobs = {job.id: job for job in jobs}
        self.grace_minutes = misfire_grace_minutes
        self.in_flight = running if running is not None else InFlight()
        self._apscheduler = AsyncIOScheduler(
            timezone=timezone,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": misfire_grace_minutes * 60,
            },
        )
        self._apscheduler.add_listener(self._skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._writes: set[asyncio.Task[None]] = set()

    # --- start and stop ---------------------------------------------------------------

    async def start(self, paused: bool = False) -> None:
        """Schedule every job from its stored run (module docstring), store the runs, and
        begin (unless ``paused``): a run that is due starts at once."""
        async with self.db.transaction() as session:
            stored = await schedule.stored_runs(session)
        now = datetime.now(UTC)
        self._apscheduler.start(paused=True)
        runs: dict[str, StoredRun] = {}
        for job in self.jobs.values():
            at, why = first_run(job.trigger, stored.get(job.id), now)
            options = {} if at is None else {"next_run_time": at}
            added = self._apscheduler.add_job(
                self._run, job.trigger, args=(job,), id=job.id, name=job.id, **options
            )
            runs[job.id] = StoredRun(trigger_text(job.trigger), added.next_run_time)
            log.info("job_scheduled id=%s next_run=%s from=%s", job.id, _iso(at), why)
            if at is not None and at <= now:
                log.info("job_due_at_start id=%s due_since=%s", job.id, _iso(at))
        async with self.db.transaction() as session:
            await schedule.store_runs(session, runs)
        if not paused:
            self._apscheduler.resume()

    def pause(self) -> None:
        """Start no new job (running ones go on); ``/healthz`` then says not running."""
        if self._apscheduler.running:
            self._apscheduler.pause()

    def resume(self) -> None:
        if self._apscheduler.running:
            self._apscheduler.resume()

    async def stop(self) -> None:
        """Shut APScheduler down (a job still running is cancelled and stays due) and
        finish writing skipped runs. Safe to call twice, or without a start."""
        if self._apscheduler.running:
            self._apscheduler.shutdown(wait=False)
            # AsyncIOScheduler shuts down in a callback on the loop: let it run.
            for _ in range(10):
                if not self._apscheduler.running:
                    break
                await asyncio.sleep(0)
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=STOP_WAIT_SECONDS)

    # --- what the bot asks -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started, not paused, not stopped."""
        return bool(self._apscheduler.state == STATE_RUNNING)

    def next_runs(self) -> dict[str, datetime | None]:
        """Each job's next run time, by job id (nothing before ``start``)."""
        return {job.id: job.next_run_time for job in self._apscheduler.get_jobs()}

    # --- running a job and keeping its next run ---------------------------------------

    async def _run(self, job: ScheduledJob) -> None:
        # APScheduler moved the job's next run on when it submitted this one.
        following = self._next_run(job.id)
        async with self.in_flight.track():
            try:
                await job.run()
            except asyncio.CancelledError:
                log.warning("job_cut_short id=%s stays_due=yes", job.id)
                raise
            except Exception:
                await self._store_next_run(job.id, self._next_run(job.id) or following)
                raise  # APScheduler logs it with its traceback
            await self._store_next_run(job.id, self._next_run(job.id) or following)

    def _next_run(self, job_id: str) -> datetime | None:
        """The job's next run in APScheduler (None once it is shut down)."""
        job = self._apscheduler.get_job(job_id)
        return None if job is None else job.next_run_time

    def _skipped(self, event: JobEvent) -> None:
        """Listener (on the loop): a run was skipped, so the next run moved on; store it."""
        if event.code == EVENT_JOB_MISSED and isinstance(event, JobExecutionEvent):
            late = datetime.now(UTC) - event.scheduled_run_time
            log.warning(
                "job_missed id=%s scheduled=%s late_minutes=%d grace_minutes=%d",
                event.job_id,
                _iso(event.scheduled_run_time),
                late.total_seconds() // 60,
                self.grace_minutes,
            )
        following = self._next_run(event.job_id)
        task = asyncio.get_running_loop().create_task(self._store_next_run(event.job_id, following))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store_next_run(self, job_id: str, at: datetime | None) -> None:
        job = self.jobs.get(job_id)
        if job is None or at is None:
            return
        run = StoredRun(trigger_text(job.trigger), at)
        try:
            async with self.db.transaction() as session:
                await schedule.store_runs(session, {job_id: run})
        except Exception as error:  # the schedule in memory goes on; a restart may run it again
            log.warning("next_run_not_stored id=%s error=%s", job_id, type(error).__name__)
