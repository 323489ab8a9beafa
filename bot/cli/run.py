"""Running the bot and looking after it: ``havainto run``, ``health`` and ``db upgrade``.

    havainto run [-c config.toml] [-v] [--log-file F]   start the bot
    havainto health [-c ...] [--url URL]   the health report as JSON (exit 1: unhealthy)
    havainto db upgrade                    migrate the database

``run`` logs to stderr, or to ``havainto.log`` while the terminal chat owns the screen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import ConfigOption, load

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def _logging(verbose: bool = False, log_file: Path | None = None) -> None:
    """Log to stderr, or to ``log_file``; library loggers only from WARNING up."""
    target = {"filename": log_file} if log_file is not None else {"stream": sys.stderr}
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        **target,
    )
    # Library loggers at INFO print request URLs, which contain the bot token.
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram", "nio", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_file: Annotated[
        Path | None, typer.Option(help="Write logs here instead of stderr.")
    ] = None,
) -> None:
    """Start every configured transport (the terminal chat when none is configured)."""
    from bot.runtime import run_bot
    from bot.transports import terminal_enabled

    cfg = load(config, creates_database=True)
    # The terminal chat owns the screen: its logs go to a file.
    if log_file is None and terminal_enabled(cfg):
        log_file = Path("havainto.log")
    _logging(verbose, log_file)
    asyncio.run(run_bot(cfg))


def health(
    config: ConfigOption = None,
    url: Annotated[
        str | None,
        typer.Option(help="Ask a running bot instead, e.g. http://127.0.0.1:8080/healthz."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 10.0,
) -> None:
    """Print the health report as JSON; the exit status is 1 when unhealthy.

    Without --url: the config loads, the database answers and its schema is current.
    With --url: the running bot's own report (database, transports, scheduler, spool).
    """
    from bot.runtime.health import fetch_health, offline_health

    if url is not None:
        report, healthy = asyncio.run(fetch_health(url, timeout))
    else:
        report = asyncio.run(offline_health(load(config)))
        healthy = report["status"] == "ok"
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    raise typer.Exit(0 if healthy else 1)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Migrate the database to the newest schema."""
    from storage.db import upgrade_schema

    cfg = load(config, creates_database=True)
    upgrade_schema(cfg.database.url)
    typer.echo("database is up to date")
