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

from bot.config import Config
from bot.delivery import DigestDesk
from bot.escalation import EscalationDesk
from bot.health import HealthServer, healthz_handler
from bot.scheduler import build_scheduler
from bot.service import Clock, Havainto, utc_now
from bot.spool import SpoolReplayer, is_unavailable
from bot.transport import Router, Transport
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

    # Set by run_bot (tests may leave it out); paused and shut down by stop().
    scheduler: Any = None
    replayer: SpoolReplayer | None = None
    health_server: HealthServer | None = None
    stopping: bool = False

    async def start(self) -> None:
        """Start transports, then the spool replay (it sends replies), health and scheduler."""
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
            stop_receiving = getattr(transport, "stop_receiving", None)
            if stop_receiving is None:
                continue
            try:
                await asyncio.wait_for(stop_receiving(), left(TRANSPORT_STOP_MIN))
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
        await self.db.close()
        log.info("stopped")

    async def _wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded
        if self.scheduler is None or not self.scheduler.running:
            return
        # APScheduler 3 cancels running coroutine jobs on shutdown; let them end first.
        executor = self.scheduler._lookup_executor("default")
        pending = [f for f in getattr(executor, "_pending_futures", ()) if not f.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                log.warning("shutdown_jobs_cancelled count=%d", len(still))


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
    if config.telegram.enabled:
        from bot.telegram import TelegramTransport

        runtime.transports.append(TelegramTransport(config.telegram, service, router))
    if config.matrix.enabled:
        from bot.matrix import MatrixTransport

        runtime.transports.append(MatrixTransport(config.matrix, service, router, db))
    if terminal if terminal is not None else config.terminal_enabled:
        from bot.terminal import TerminalTransport

        runtime.transports.append(TerminalTransport(service, router))
    for transport in runtime.transports:
        router.add(transport)
    runtime.replayer = SpoolReplayer(service, router.deliver)
    on_webhook_port = False
    if config.telegram.enabled and config.telegram.webhook:
        from bot.telegram import TelegramTransport

        for transport in runtime.transports:
            if isinstance(transport, TelegramTransport):
                # The webhook server answers /healthz too: the balancer checks that port.
                transport.web_routes.append(("GET", "/healthz", healthz_handler(runtime)))
        on_webhook_port = (config.health.listen, config.health.port) == (
            config.telegram.webhook_listen,
            config.telegram.webhook_port,
        )
    if config.health.enabled and not on_webhook_port:
        runtime.health_server = HealthServer(runtime, config.health.listen, config.health.port)
    return runtime


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
    finished = getattr(
        next((t for t in runtime.transports if t.name == "terminal"), None), "finished", None
    )
    if finished is not None:
        waiters.append(asyncio.create_task(finished.wait()))
    log.info("running transports=%s", ",".join(t.name for t in runtime.transports))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    await runtime.stop()
