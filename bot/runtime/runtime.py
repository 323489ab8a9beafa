"""Running Havainto: the service, its transports and its scheduled jobs in one process.

``havainto run`` calls ``run_bot``: it migrates the database, starts every
configured transport (the terminal chat when none is), starts the scheduler,
and stops everything cleanly on SIGINT or SIGTERM (or when the terminal's
input ends).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from bot import transports as registry
from bot.config import Config
from bot.delivery import DigestDesk
from bot.escalation import EscalationDesk
from bot.inflight import InFlight
from bot.router import Router
from bot.runtime.health import HealthServer, healthz_handler
from bot.runtime.scheduler import build_scheduler
from bot.service import Clock, Havainto, utc_now
from bot.spool import SpoolReplayer, is_unavailable
from bot.transports.base import Transport, TransportContext
from storage import repo
from storage.db import Database

log = logging.getLogger("havainto.app")

# On SIGTERM: how long updates already taken may take to finish before transports close.
# systemd's TimeoutStopSec (30 s in deploy/havainto.service) must exceed it.
SHUTDOWN_GRACE = 20.0
# Each transport then gets at least this long to close (Matrix stores its sync token).
TRANSPORT_STOP_MIN = 5.0


@dataclass
class Runtime:
    """Everything one running bot holds; tests build one to drive transports directly."""

    config: Config
    db: Database
    service: Havainto
    router: Router
    transports: list[Transport] = field(default_factory=list)
    escalations: EscalationDesk | None = None
    digests: DigestDesk | None = None

    # Scheduled jobs running now (bot.runtime.jobs): a graceful shutdown waits for them.
    jobs: InFlight = field(default_factory=InFlight)
    # Set by run_bot (tests may leave it out); paused and shut down by stop().
    scheduler: Any = None
    replayer: SpoolReplayer | None = None
    health_server: HealthServer | None = None
    stopping: bool = False

    async def start(self) -> None:
        """Start transports, then the spool replay (it sends replies), health and scheduler."""
        if self.digests is not None:
            await self.digests.prepare()
        for transport in self.transports:
            await transport.start()
        if self.replayer is not None:
            self.replayer.start()
        if self.health_server is not None:
            await self.health_server.start()
        if self.scheduler is not None:
            self.scheduler.start()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop gracefully: take nothing new, let what was taken finish, then close.

        1. Transports stop receiving (polling stops, the webhook port closes), the
           scheduler starts no new job and the spool replay stops; /healthz says 503.
        2. Events being handled and running jobs finish, ``grace`` seconds at most.
        3. Transports close (PTB handles updates it had fetched; Matrix stores its
           sync token, with the database still open), then scheduler, health, database.
        Drafts need nothing here: every step is committed as it happens, and events
        kept in the spool stay on disk for the next start.
        """
        if self.stopping:
            return
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace

        def left(minimum: float = 0.1) -> float:
            return max(minimum, deadline - loop.time())

        log.info("stopping in_flight=%d", self.service.inflight.count)
        for transport in self.transports:
            try:
                await asyncio.wait_for(transport.stop_receiving(), left(TRANSPORT_STOP_MIN))
            except Exception:
                log.exception("stop_receiving_failed name=%s", transport.name)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        if self.replayer is not None:
            await self.replayer.stop(left())
        if not await self.service.inflight.wait_idle(left()):
            log.warning("shutdown_grace_exceeded in_flight=%d", self.service.inflight.count)
        await self._wait_for_jobs(left())
        for transport in reversed(self.transports):
            try:
                await asyncio.wait_for(transport.stop(), left(TRANSPORT_STOP_MIN))
            except Exception:
                log.exception("transport_stop_failed name=%s", transport.name)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.health_server is not None:
            await self.health_server.stop()
        if self.escalations is not None:
            await self.escalations.close()  # its quick retries use the database
        await self.db.close()
        log.info("stopped")

    async def _wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded
        # APScheduler 3 cancels running coroutine jobs on shutdown; let them end first.
        if not await self.jobs.wait_idle(timeout):
            log.warning("shutdown_jobs_cancelled count=%d", self.jobs.count)


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
    context = TransportContext(config, service, router, DatabaseState(db), healthz_handler(runtime))
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
