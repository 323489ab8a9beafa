"""The running bot: the ``Runtime`` (service, router, desks, transports from the
registry), its scheduled jobs and their scheduler, and ``/healthz``.

- ``runtime``: ``Runtime``, what one running bot holds; starting and stopping it.
- ``jobs``: the scheduled jobs, bound to one runtime, and ``build_scheduler``.
- ``scheduler``: ``JobScheduler``, APScheduler in memory with each job's next run
  kept in the database, so a run missed while the bot was down is still made.
- ``health``: the health report and its HTTP server.
- ``run``: ``build_runtime`` and ``run_bot`` (``havainto run``), which put them together.

No module keeps process-wide state: each runtime has its own scheduler and jobs.
"""

from bot.runtime.run import DatabaseState, build_runtime, run_bot
from bot.runtime.runtime import Runtime

__all__ = ["DatabaseState", "Runtime", "build_runtime", "run_bot"]
