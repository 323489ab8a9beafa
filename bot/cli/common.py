"""What every ``havainto`` command module shares: options, the database run, tables."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer

from bot.config import Config

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="HAVAINTO_CONFIG",
        help="TOML config file.",
        exists=True,
        dir_okay=False,
    ),
]


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
    """Print aligned columns (the last one is left ragged)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def utc_now() -> datetime:
    return datetime.now(UTC)
