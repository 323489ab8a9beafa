"""The ``havainto`` command line (Typer).

    havainto run [-c config.toml]                       start the bot
    havainto invite --team T --role worker [--expires 7d]  print an invite code
    havainto invite list | revoke CODE                  manage invite codes
    havainto export --format csv|xlsx|jsonl [...]       observations in comparable codes
    havainto report --region R --from D --to D ...      the printable social report
    havainto audit | teams list | people list|revoke    data care and administration
    havainto db upgrade                                 migrate the database
    havainto digest weekly --team T [--week W] [--send]  print (or deliver) a weekly digest
    havainto digest monthly [--region R] [--month M] [--send]  the monthly summary
    havainto health [-c ...] [--url URL]                health report as JSON (exit 1: unhealthy)

The config file may also be given as HAVAINTO_CONFIG.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from bot.cli_options import ConfigOption
from bot.config import ROLES, Config, load_config
from bot.datacare_cli import register as register_datacare
from bot.digest_cli import register as register_digest

app = typer.Typer(
    help="Havainto: observations from street work to decision makers.", no_args_is_help=True
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _config(path: Path | None) -> Config:
    return load_config(path)


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


@app.command()
def run(
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_file: Annotated[
        Path | None, typer.Option(help="Write logs here instead of stderr.")
    ] = None,
) -> None:
    """Start every configured transport (the terminal chat when none is configured)."""
    from bot.runtime import run_bot

    cfg = _config(config)
    # The terminal chat owns the screen: its logs go to a file.
    if log_file is None and cfg.terminal_enabled:
        log_file = Path("havainto.log")
    _logging(verbose, log_file)
    asyncio.run(run_bot(cfg))


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text.lower())
    if not match:
        raise typer.BadParameter("use a number and a unit: 30m, 12h, 7d or 2w")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: amount})


invite_app = typer.Typer(help="Invite codes: create (with --team), list, revoke.")
app.add_typer(invite_app, name="invite")


@invite_app.callback(invoke_without_command=True)
def invite(
    ctx: typer.Context,
    team: Annotated[str | None, typer.Option(help="Team id from the config.")] = None,
    role: Annotated[str, typer.Option(help="worker, lead, leader or admin.")] = "worker",
    expires: Annotated[str, typer.Option(help="Validity: 30m, 12h, 7d, 2w.")] = "7d",
    person: Annotated[
        int | None, typer.Option(help="Link a further identity to this person id.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a single-use invite code. The code is printed alone on the last line.

    ``havainto invite list`` and ``havainto invite revoke CODE`` manage existing codes.
    """
    if ctx.invoked_subcommand is not None:
        return
    if team is None:
        raise typer.BadParameter("give the team the invite is for", param_hint="--team")
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    cfg = _config(config)
    if cfg.team(team) is None:
        raise typer.BadParameter(f"unknown team {team!r}", param_hint="--team")
    valid_for = parse_duration(expires)

    async def create() -> str:
        from bot.service import Havainto
        from storage.db import Database

        db = Database(cfg.database.url)
        try:
            service = Havainto(cfg, db)
            await service.prepare()
            return await service.create_invite(team, role, valid_for, person)
        finally:
            await db.close()

    try:
        code = asyncio.run(create())
    except ValueError as error:  # e.g. a --person that does not exist or is revoked
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    until = (datetime.now(ZoneInfo(cfg.timezone)) + valid_for).strftime("%Y-%m-%d %H:%M")
    typer.echo(f"Invite for team {team}, role {role}, valid until {until}.", err=False)
    if cfg.telegram.bot_username:
        typer.echo(f"Telegram: https://t.me/{cfg.telegram.bot_username}?start={code}")
    typer.echo(f"Send the bot: /start {code}  (Matrix: !start {code})")
    typer.echo(code)


@app.command()
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
        report = asyncio.run(offline_health(_config(config)))
        healthy = report["status"] == "ok"
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    raise typer.Exit(0 if healthy else 1)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Migrate the database to the newest schema."""
    from storage.db import upgrade_schema

    cfg = _config(config)
    upgrade_schema(cfg.database.url)
    typer.echo("database is up to date")


register_datacare(app, invite_app)
register_digest(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
