"""What every ``havainto`` command module shares: options, the database run, tables."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer

from bot.config import Config, load_config
from bot.config_errors import ConfigError
from flows import textguard

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="HAVAINTO_CONFIG",
        # Not checked by Typer: a missing file is a config error like any other (load).
        help="TOML config file.",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Say what is wrong on stderr, in a few lines, and exit (2: fix the config or call)."""
    for line in message.splitlines():
        typer.echo(line if line.startswith(" ") else f"error: {line}", err=True)
    raise typer.Exit(code)


def clean_text(text: str, option: str, allow: bool) -> str:
    """A text given on the command line (``option`` names where), screened as a chat's
    is: a personal identity code is removed (and said so); any other identifier stops the
    command unless ``allow`` (``--allow-identifiers``); an empty text stops it."""
    screened = textguard.screen(text.strip())
    if not screened.text.strip():
        fail(f"{option} is empty")
    if screened.hetu_removed:
        typer.echo("note: a personal identity code was removed from the text", err=True)
    if screened.kinds and not allow:
        fail(
            f"{option} looks like it contains {', '.join(screened.kinds)}. Write it without, "
            "or add --allow-identifiers if it is not about a person."
        )
    return screened.text


def load(config: Path | None, *, creates_database: bool = False) -> Config:
    """The config of a command: a config error is a short message and exit status 2.

    Only ``run`` and ``db upgrade`` may create the database; every other command
    stops when its SQLite file does not exist rather than report from a new, empty one.
    """
    try:
        cfg = load_config(config)
    except ConfigError as error:
        fail(str(error))
    if not creates_database:
        refuse_new_database(cfg, config)
    return cfg


def refuse_new_database(cfg: Config, config: Path | None) -> None:
    from storage.db import sqlite_file

    path = sqlite_file(cfg.database.url)
    if path is None or path.exists():
        return
    given = f" -c {config}" if config is not None else ""
    source = f"database.url of {config}" if config is not None else "the default database.url"
    fail(
        f"no database at {path.absolute()} ({source}); this command would start a new, "
        "empty one.\n"
        f"  Check the path (a relative one is taken from the config file's folder), or create "
        f"the database with: havainto db upgrade{given}"
    )


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container without one)
        return "operator"


ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who is doing this, for the audit trail.  [default: your login name]",
        show_default=False,
    ),
]


def actor_name(actor: str | None) -> str:
    return actor.strip() if actor and actor.strip() else default_actor()


def parse_day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("use a date like 2026-03-31", param_hint=option) from None


def run_with_db(cfg: Config, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the database (migrated, teams mirrored), run ``work(db)``, close it."""

    async def main() -> T:
        from storage import repo
        from storage.db import Database

        db = Database(cfg.database.url)
        try:
            await db.upgrade()
            async with db.transaction() as session:
                await repo.sync_teams(
                    session, ((t.id, t.name, t.region, t.language) for t in cfg.teams)
                )
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


def local_time(moment: datetime | None, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(zone).strftime(fmt) if moment is not None else "-"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print aligned columns (the last one is left ragged); a closed pipe ends it quietly."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    try:
        for row in cells:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Standard output's reader went away (``| head``): what is still buffered, and
    anything printed later, goes nowhere, so the command ends with status 0 and no
    "Broken pipe" noise when Python flushes at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def utc_now() -> datetime:
    return datetime.now(UTC)
