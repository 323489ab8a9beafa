"""Is the bot well? Database, transports, scheduler and the spool in one JSON report.

``health(runtime)`` builds the report a running bot gives on ``GET /healthz``
(200 when healthy, 503 otherwise): on the Telegram webhook server in webhook
mode, and on a small server of its own when ``[health] enabled = true``
(off by default, so that a plain ``havainto run`` opens no port; a production
config turns it on, see the README). ``havainto health`` prints the same
report: from a running bot with ``--url``, else from the config and the
database alone (``offline_health``).

Healthy means: the database answers ``SELECT 1``, every transport that says
whether it runs does, the scheduler runs, and the bot is not shutting down (a
load balancer stops sending it updates at once). A transport tells its state
with ``Transport.health()``: whether it runs, its last successful contact with
its platform, and its mode where it has one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import text

from bot import transports as registry
from bot.transports.base import Transport
from storage.db import Database

if TYPE_CHECKING:
    from bot.config import Config
    from bot.runtime.runtime import Runtime
    from bot.runtime.scheduler import JobScheduler

log = logging.getLogger("havainto.health")

Report = dict[str, Any]
DATABASE_TIMEOUT = 5.0
HEALTH_PATH = "/healthz"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


async def check_database(db: Database, timeout: float = DATABASE_TIMEOUT) -> Report:  # noqa: ASYNC109
    """``SELECT 1`` with its latency; the error's type (never its text) when it fails."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        return {
            "ok": False,
            "dialect": db.dialect,
            "error": type(error).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    return {
        "ok": True,
        "dialect": db.dialect,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _transport(transport: Transport) -> Report:
    facts = transport.health()
    report: Report = {"running": facts.running, "last_contact": _iso(facts.last_contact)}
    if facts.mode is not None:
        report["mode"] = facts.mode
    return report


def _scheduler(scheduler: JobScheduler | None) -> Report:
    if scheduler is None:
        return {"running": False, "configured": False, "jobs": 0, "next_runs": {}}
    next_runs = scheduler.next_runs()
    return {
        "running": scheduler.running,
        "configured": True,
        "jobs": len(next_runs),
        "next_runs": {job_id: _iso(at) for job_id, at in next_runs.items()},
    }


async def health(runtime: Runtime) -> Report:
    """The running bot's health (see the module docstring for what counts)."""
    database = await check_database(runtime.db)
    transports = {t.name: _transport(t) for t in runtime.transports}
    scheduler = _scheduler(runtime.scheduler)
    replayer = runtime.replayer
    healthy = (
        database["ok"]
        and not runtime.stopping
        and all(t["running"] is not False for t in transports.values())
        and (scheduler["running"] or not scheduler["configured"])
    )
    return {
        "status": "ok" if healthy else "unhealthy",
        "checked_at": _iso(datetime.now(UTC)),
        "stopping": runtime.stopping,
        "database": database,
        "transports": transports,
        "scheduler": scheduler,
        "spool": {
            "pending": len(runtime.service.spool),
            "replayer_running": replayer.running if replayer is not None else False,
            "last_replay": _iso(replayer.last_success) if replayer is not None else None,
        },
        "in_flight": runtime.service.inflight.count,
    }


async def offline_health(config: Config) -> Report:
    """Without a running bot: the config loads, the database answers, the schema is current."""
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    db = Database(config.database.url)
    try:
        database = await check_database(db)
        if database["ok"]:
            scripts = ScriptDirectory.from_config(alembic_config(config.database.url))
            head = scripts.get_current_head()
            try:
                async with db.engine.connect() as connection:
                    current = (
                        await connection.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalar_one_or_none()
            except Exception as error:
                current = None
                log.info("schema_unknown error=%s", type(error).__name__)
            database["schema"] = {"current": current, "head": head, "ok": current == head}
    finally:
        await db.close()
    transports: Report = {}
    facts: Report = {}  # each transport's own, e.g. telegram_mode (polling or webhook)
    for registration in registry.enabled(config):
        transports[registration.name] = {"configured": True}
        for fact, value in registration.offline_facts(config).items():
            facts[f"{registration.name}_{fact}"] = value
    ok = bool(database["ok"]) and bool(database.get("schema", {}).get("ok", False))
    return {
        "status": "ok" if ok else "unhealthy",
        "checked_at": _iso(datetime.now(UTC)),
        "running_bot": False,
        "database": database,
        "transports": transports,
        **facts,
    }


def healthz_handler(
    runtime: Runtime,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``GET /healthz`` handler: the report with 200 when healthy, 503 when not."""

    async def healthz(request: web.Request) -> web.Response:
        report = await health(runtime)
        return web.json_response(
            report,
            status=200 if report["status"] == "ok" else 503,
            dumps=lambda value: json.dumps(value, ensure_ascii=False),
        )

    return healthz


class HealthServer:
    """A small aiohttp server answering ``GET /healthz`` (polling mode)."""

    def __init__(self, runtime: Runtime, listen: str, port: int) -> None:
        self.listen = listen
        self.requested_port = port
        self.port = port
        self._app = web.Application()
        self._app.router.add_get(HEALTH_PATH, healthz_handler(runtime))
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen, self.requested_port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("health_server_started port=%d", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def fetch_health(url: str, timeout: float = 10.0) -> tuple[Report, bool]:  # noqa: ASYNC109
    """Ask a running bot's ``/healthz``; (report, healthy). Unreachable is unhealthy."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(url) as response,
        ):
            report = await response.json(content_type=None)
            return report, response.status == 200
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return {"status": "unreachable", "url": url, "error": type(error).__name__}, False
