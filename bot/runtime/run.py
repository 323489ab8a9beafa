"""Building the running bot from its config, and running it (``havainto run``).

``build_runtime`` migrates the database (waiting for it if it is not up yet) and
makes the service, the desks, every configured transport from the registry and the
health server. ``run_bot`` adds the scheduler with the bot's jobs, starts it all and
stops it cleanly on SIGINT or SIGTERM, or when the terminal's input ends.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from bot import transports as registry
from bot.config import Config
from bot.delivery import DigestDesk
from bot.escalation import EscalationDesk
from bot.knowledge import KnowledgeDesk
from bot.reports import ReportDesk
from bot.router import Router
from bot.runtime.health import HealthServer, healthz_handler
from bot.runtime.jobs import build_scheduler
from bot.runtime.runtime import Runtime
from bot.service import Clock, Havainto, utc_now
from bot.spool import SpoolReplayer, is_unavailable
from bot.transports.base import SendBudget, TransportContext
from storage import repo
from storage.db import Database
from storage.send_budget import DatabaseSendBudget, LocalSendBudget

log = logging.getLogger("havainto.app")


async def build_runtime(
    config: Config, clock: Clock = utc_now, terminal: bool | None = None
) -> Runtime:
    db = Database(config.database.url)
    service = Havainto(config, db, clock)
    await _prepare(service, config.database.start_wait_seconds)
    router = Router()
    router.failed_hooks.append(service.on_failed)
    runtime = Runtime(config, db, service, router)
    runtime.escalations = EscalationDesk(config, db, router, clock)
    runtime.escalations.install(service)
    runtime.digests = DigestDesk(config, db, router, clock)
    runtime.digests.install(service)
    runtime.knowledge = KnowledgeDesk(config, db, router, clock)
    runtime.knowledge.install(service)
    runtime.reports = ReportDesk(config, db, router, clock, runtime.digests)
    runtime.reports.install(service)
    # One budget for every instance on this token (the default with PostgreSQL), or
    # the same buckets in this process.
    budget: SendBudget = LocalSendBudget()
    if config.shared_send_budget:
        budget = DatabaseSendBudget(db)
        log.info("send_budget shared=yes")
    context = TransportContext(
        config, service, router, DatabaseState(db), healthz_handler(runtime), budget
    )
    for registration in registry.REGISTRY.values():
        wanted = registration.enabled(config)
        if registration.name == registry.TERMINAL and terminal is not None:
            wanted = terminal  # tests and tools run without the local chat
        if wanted:
            runtime.transports.append(registration.build(context))
    for transport in runtime.transports:
        router.add(transport)
    runtime.replayer = SpoolReplayer(service, router.deliver)
    # A transport that runs a web server (Telegram's webhook) answers /healthz there too:
    # the balancer checks that port. Then no second server is started on the same port.
    address = (config.health.listen, config.health.port)
    on_webhook_port = any(t.health().serves_healthz == address for t in runtime.transports)
    if config.health.enabled and not on_webhook_port:
        runtime.health_server = HealthServer(runtime, config.health.listen, config.health.port)
    return runtime


class DatabaseState:
    """The ``StateStore`` transports get: small named strings in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        async with self.db.transaction() as session:
            return await repo.get_state(session, key)

    async def set_many(self, values: dict[str, str]) -> None:
        async with self.db.transaction() as session:
            for key, value in values.items():
                await repo.set_state(session, key, value)


async def _prepare(service: Havainto, wait_seconds: float) -> None:
    """Migrate and sync teams; an unreachable database is waited for, with backoff."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.5
    while True:
        try:
            await service.prepare()
            return
        except Exception as error:
            if not is_unavailable(error) or loop.time() + delay > deadline:
                raise
            log.warning(
                "database_unavailable at=start error=%s retry_in=%.1fs",
                type(error).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)


async def run_bot(config: Config) -> None:
    runtime = await build_runtime(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    runtime.scheduler = build_scheduler(runtime)
    await runtime.start()
    waiters = [asyncio.create_task(stop.wait())]
    for transport in runtime.transports:
        if transport.finished is not None:  # the terminal's input ended: the bot ends
            waiters.append(asyncio.create_task(transport.finished.wait()))
    log.info("running transports=%s", ",".join(t.name for t in runtime.transports))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    await runtime.stop()
