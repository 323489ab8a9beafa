"""The scheduled jobs' functions, and how they find the running bot.

APScheduler's persistent job store (``bot.runtime.scheduler``) keeps a textual
reference to each job's function, so the functions are module-level and take
only the name of the bot instance they work for. ``register`` makes a
``Runtime`` the one an instance name stands for; this table is the only
process-wide state of the runtime, and nothing outside this module reads it.

Every job counts as running in ``Runtime.jobs`` until it ends, so a graceful
shutdown waits for jobs as it waits for events.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.datacare import nudge_quiet_workers, retain
from storage.planner import refresh_statistics

if TYPE_CHECKING:
    from bot.runtime.runtime import Runtime

log = logging.getLogger("havainto.scheduler")

DEFAULT_INSTANCE = "default"

_RUNTIMES: dict[str, Runtime] = {}


def register(runtime: Runtime, instance: str = DEFAULT_INSTANCE) -> None:
    """Make ``runtime`` the one the job functions of this process work for."""
    _RUNTIMES[instance] = runtime


def unregister(runtime: Runtime, instance: str = DEFAULT_INSTANCE) -> None:
    if _RUNTIMES.get(instance) is runtime:
        del _RUNTIMES[instance]


def runtime_for(instance: str) -> Runtime | None:
    runtime = _RUNTIMES.get(instance)
    if runtime is None:
        log.warning("job_without_runtime instance=%s", instance)
    return runtime


# --- the jobs (module-level: the job store keeps references to them) -------------------


async def weekly_digest_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None and runtime.digests is not None:
        async with runtime.jobs.track():
            outcomes = await runtime.digests.send_weekly()
        log.info("job_done job=weekly_digests results=%s", _summary(outcomes))


async def monthly_summary_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is None or runtime.digests is None:
        return
    if not runtime.digests.monthly_due_today():
        log.debug("job_skipped job=monthly_summaries reason=not_first_working_day")
        return
    async with runtime.jobs.track():
        outcomes = await runtime.digests.send_monthly()
    log.info("job_done job=monthly_summaries results=%s", _summary(outcomes))


async def escalation_check_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None and runtime.escalations is not None:
        async with runtime.jobs.track():
            await runtime.escalations.check()


async def delivery_retry_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None and runtime.digests is not None:
        async with runtime.jobs.track():
            outcomes = await runtime.digests.retry_due()
        if outcomes:
            log.info("job_done job=delivery_retries results=%s", _summary(outcomes))


async def draft_reminder_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None:
        async with runtime.jobs.track():
            outbounds = await runtime.service.remind_idle_drafts()
            await runtime.router.deliver(outbounds)


async def shift_reminder_job(instance: str = DEFAULT_INSTANCE) -> None:
    """End-of-shift prompts due now (``Havainto.remind_shift_end``)."""
    runtime = runtime_for(instance)
    if runtime is not None:
        async with runtime.jobs.track():
            outbounds = await runtime.service.remind_shift_end()
            await runtime.router.deliver(outbounds)


async def planner_statistics_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None:
        async with runtime.jobs.track():
            ran = await refresh_statistics(runtime.db)
        if ran is not None:
            log.info("job_done job=planner_statistics ran=%r", ran)


def _summary(outcomes: Any) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return "+".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "none"


async def retention_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None:
        async with runtime.jobs.track():
            await retain(runtime)


async def quiet_nudge_job(instance: str = DEFAULT_INSTANCE) -> None:
    runtime = runtime_for(instance)
    if runtime is not None:
        async with runtime.jobs.track():
            count = await nudge_quiet_workers(runtime)
        log.info("job_done job=quiet_nudges sent=%s", count)
