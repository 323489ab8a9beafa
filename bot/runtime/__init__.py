"""The running bot: the ``Runtime`` (service, router, desks, transports from the
registry), its scheduled jobs and their wiring, and ``/healthz``.

- ``runtime``: ``Runtime``, ``build_runtime``, ``run_bot`` (``havainto run``).
- ``jobs``: the scheduled jobs' functions and how they find the running bot.
- ``scheduler``: APScheduler with its job store in the bot's database.
- ``health``: the health report and its HTTP server.
"""

from bot.runtime.runtime import DatabaseState, Runtime, build_runtime, run_bot

__all__ = ["DatabaseState", "Runtime", "build_runtime", "run_bot"]
