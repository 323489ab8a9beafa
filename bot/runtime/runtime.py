"""The running bot: ``Runtime`` holds the service, its transports, desks, scheduler and
health server, starts them, and stops them gracefully.

``bot.runtime.run`` builds one from the config (``build_runtime``) and runs it
(``run_bot``); the jobs (``bot.runtime.jobs``) and the health report
(``bot.runtime.health``) are functions of it. This module imports none of them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from bot.config import Config
from bot.delivery import DigestDesk
from bot.escalation import EscalationDesk
from bot.inflight import InFlight
from bot.knowledge import KnowledgeDesk
from bot.reports import ReportDesk
from bot.router import Router
from bot.runtime.scheduler import JobScheduler
from bot.service import Havainto
from bot.spool import SpoolReplayer
from bot.transports.base import Transport
from storage.db import Database

log = logging.getLogger("havainto.app")

# On SIGTERM: how long updates already taken may take to finish before transports close.
# systemd's TimeoutStopSec (30 s in deploy/havainto.service) must exceed it.
SHUTDOWN_GRACE = 20.0
# Each transport then gets at least this long to close (Matrix stores its sync token).
TRANSPORT_STOP_MIN = 5.0


class Server(Protocol):
    """A server the runtime starts after its transports and stops before the database
    (the ``/healthz`` server of ``bot.runtime.health``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    """Everything one running bot holds; tests build one to drive transports directly."""

    config: Config
    db: Database
    service: Havainto
    router: Router
    transports: list[Transport] = field(default_factory=list)
    escalations: EscalationDesk | None = None
    knowledge: KnowledgeDesk | None = None
    digests: DigestDesk | None = None
    reports: ReportDesk | None = None

    # Scheduled jobs running now (bot.runtime.jobs): a graceful shutdown waits for them.
    jobs: InFlight = field(default_factory=InFlight)
    # Set by run_bot (bot.runtime.jobs.build_scheduler; tests may leave it out), started
    # by start(), paused and stopped by stop().
    scheduler: JobScheduler | None = None
    replayer: SpoolReplayer | None = None
    health_server: Server | None = None
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
            await self.scheduler.start()

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
        if self.scheduler is not None:
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
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.health_server is not None:
            await self.health_server.stop()
        if self.escalations is not None:
            await self.escalations.close()  # its quick retries use the database
        if self.reports is not None:
            await self.reports.close()  # an edited report being made uses the database
        try:
            await self.service.close_outbox()  # else sent again after the outbox's grace
        except Exception as error:
            log.warning("outbox_forget_failed error=%s", type(error).__name__)
        await self.db.close()
        log.info("stopped")

    async def _wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded
        # APScheduler 3 cancels running coroutine jobs on shutdown; let them end first.
        if not await self.jobs.wait_idle(timeout):
            log.warning("shutdown_jobs_cancelled count=%d", self.jobs.count)
