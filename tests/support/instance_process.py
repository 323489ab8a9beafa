"""One Havainto instance in a child process, for ``tests/test_two_instances.py``.

    python -m tests.support.instance_process CONFIG_JSON OFFSET_SECONDS CHECK_SECONDS

Runs what ``havainto run`` runs (``bot.runtime.run_bot``: migrations, transports, the
spool replay, the scheduler with its stored runs in the database, a
graceful stop on SIGTERM), with two settings a config file cannot give:

* a clock ``OFFSET_SECONDS`` ahead of real time, so that "today" can be the first
  working day of a month (the monthly job posts only then);
* the escalation check and the delivery retries every ``CHECK_SECONDS`` seconds
  (every 10 and 5 minutes by default; the config's minimum for the check is a
  minute), so that reminders and handed-over digests come within a test's patience.

Logs go to stderr as with ``havainto run``; the line ``running transports=...``
says the instance is up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta

import bot.runtime.jobs
from bot.config import load_config
from bot.runtime import build_runtime

log = logging.getLogger("havainto.app")


async def main(config_json: str, offset_seconds: float, check_seconds: float) -> None:
    config = load_config(None, **json.loads(config_json))
    # Below the config's minimum on purpose (pydantic does not validate assignments).
    config.schedule.escalation_check_minutes = check_seconds / 60  # type: ignore[assignment]
    bot.runtime.jobs.RETRY_INTERVAL_MINUTES = check_seconds / 60  # type: ignore[assignment]
    shift = timedelta(seconds=offset_seconds)
    runtime = await build_runtime(config, clock=lambda: datetime.now(UTC) + shift, terminal=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runtime.scheduler = bot.runtime.jobs.build_scheduler(runtime)
    await runtime.start()
    log.info("running transports=%s", ",".join(t.name for t in runtime.transports))
    await stop.wait()
    await runtime.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram", "nio", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
