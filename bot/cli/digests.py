"""``havainto digest``: print a digest, and with ``--send`` deliver it like the scheduler does.

    havainto digest weekly --team TEAM [--week 2026-W47] [--send] [--out DIR]
    havainto digest monthly [--region R] [--month 2026-11] [--lang fi] [--send] [--out DIR]

The text is printed; charts (and the monthly CSV) are written to ``--out`` (the
working directory by default) and their paths printed. Without ``--week`` or
``--month`` the previous ISO week or month is taken, as the scheduled jobs do.
``--send`` goes through the delivery ledger: a digest already posted to a chat is
not posted again (the command says so), and a failed one is left for the running
bot's retry job. Sending needs a transport that can send without receiving
(``Transport.start_sending``: Telegram can, Matrix cannot); what is for the others is left
to the running bot.

A digest printed here is read out like an export: it is on the audit trail
(``digest.weekly`` / ``digest.monthly``, with ``--actor``) before it is printed, and
completed or marked interrupted after (``| head`` closing the pipe ends it quietly).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    load,
    silence_stdout,
    utc_now,
)
from bot.config import Config

digest_app = typer.Typer(help="Weekly and monthly digests: print them, or --send them.")

OutOption = Annotated[
    Path, typer.Option("--out", help="Folder for the chart images (and the CSV).")
]
SendOption = Annotated[
    bool, typer.Option("--send", help="Deliver to the configured chats (once: ledger).")
]


@digest_app.command("weekly")
def weekly(
    team: Annotated[str, typer.Option(help="Team id from the config.")],
    week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W47.")] = None,
    send: SendOption = False,
    out: OutOption = Path("."),
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """The weekly team digest (default: the previous ISO week)."""
    from digests.periods import parse_week, previous_iso_week

    cfg = load(config)
    if cfg.team(team) is None:
        raise typer.BadParameter(f"unknown team {team!r}", param_hint="--team")
    if week is not None:
        try:
            parse_week(week)
        except ValueError as error:
            raise typer.BadParameter("use the form 2026-W47", param_hint="--week") from error
    chosen = week or previous_iso_week(datetime.now(UTC), cfg.timezone)
    what = f"team={team} week={chosen} send={'yes' if send else 'no'}"

    async def run(runtime: Any) -> int:
        await _read_out(
            runtime.db, "weekly", actor, what, lambda: runtime.digests.weekly(team, chosen), out
        )
        if not send:
            return 0
        return _report(await runtime.digests.send_weekly(chosen, [team]))

    raise typer.Exit(_with_runtime(cfg, run, send))


@digest_app.command("monthly")
def monthly(
    region: Annotated[
        str | None, typer.Option(help="Region; without it, the whole organisation.")
    ] = None,
    month: Annotated[str | None, typer.Option(help="Month, e.g. 2026-11.")] = None,
    lang: Annotated[
        str | None, typer.Option(help="fi, sv or en (default: the channel's language).")
    ] = None,
    send: SendOption = False,
    out: OutOption = Path("."),
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """The monthly escalation summary (default: the previous month)."""
    from digests.periods import parse_month, previous_month

    cfg = load(config)
    if month is not None:
        try:
            parse_month(month)
        except ValueError as error:
            raise typer.BadParameter("use the form 2026-11", param_hint="--month") from error
    if lang is not None and lang not in ("fi", "sv", "en"):
        raise typer.BadParameter("fi, sv or en", param_hint="--lang")
    chosen = month or previous_month(datetime.now(UTC), cfg.timezone)
    scope = region or None
    channel = next((c for c in cfg.leadership if (c.region or None) == scope), None)
    language = lang or (channel.language if channel else "fi")
    what = f"region={scope or '*'} month={chosen} lang={language} send={'yes' if send else 'no'}"

    async def run(runtime: Any) -> int:
        await _read_out(
            runtime.db,
            "monthly",
            actor,
            what,
            lambda: runtime.digests.monthly(scope, chosen, language),
            out,
        )
        if not send:
            return 0
        if channel is None:
            typer.echo("No leadership channel is configured for this scope: nothing sent.")
            return 1
        return _report(await runtime.digests.send_monthly(chosen, [scope]))

    raise typer.Exit(_with_runtime(cfg, run, send))


async def _read_out(
    db: Any,
    kind: str,
    actor: str | None,
    what: str,
    build: Callable[[], Awaitable[Any]],
    out: Path,
) -> None:
    """Render and print a digest, on the audit trail before and completed after."""
    from storage import audit

    action = audit.DIGEST_WEEKLY if kind == "weekly" else audit.DIGEST_MONTHLY
    async with db.transaction() as session:
        event = await audit.begin(session, actor_name(actor), action, what, utc_now())
    state, rows = audit.INTERRUPTED, 0
    try:
        rendered = await build()
        rows = rendered.observations
        _show(rendered, out)
        sys.stdout.flush()  # a closed pipe shows here, before "completed"
        state = audit.COMPLETED
    except BrokenPipeError:
        silence_stdout()  # the reader has all it wanted; --send still goes on
    finally:
        async with db.transaction() as session:
            await audit.finish(session, event, what, rows, state)


def _show(rendered: Any, out: Path) -> None:
    typer.echo(rendered.text)
    out.mkdir(parents=True, exist_ok=True)
    for filename, png in rendered.charts:
        path = out / filename
        path.write_bytes(png)
        typer.echo(f"[chart] {path}")
    if rendered.csv is not None:
        path = out / (rendered.csv_filename or "escalations.csv")
        path.write_bytes(rendered.csv)
        typer.echo(f"[csv] {path}")
    if getattr(rendered, "pdf", None) is not None:
        path = out / (rendered.pdf_filename or "summary.pdf")
        path.write_bytes(rendered.pdf)
        typer.echo(f"[pdf] {path}")


def _report(outcomes: list[Any]) -> int:
    words = {
        "sent": "sent",
        "skipped": "already delivered (or being delivered): not sent again",
        "failed": "FAILED: the running bot retries it; see the log",
        "lost": "taken over by another process",
        "handed_over": "left to the running bot that serves this platform",
    }
    if not outcomes:
        typer.echo("No chat is configured for this digest: nothing sent.")
        return 1
    for outcome in outcomes:
        typer.echo(f"{outcome.key}: {words.get(outcome.result, outcome.result)}")
    return 1 if any(o.result == "failed" for o in outcomes) else 0


def _with_runtime(cfg: Config, work: Any, send: bool) -> int:
    async def main() -> int:
        from bot.runtime import build_runtime

        runtime = await build_runtime(cfg, terminal=False)
        try:
            if send:
                for transport in list(runtime.transports):
                    if not await transport.start_sending():  # send only: the bot receives
                        typer.echo(f"{transport.name}: cannot send from the command line")
                        runtime.router.transports.pop(transport.name, None)
            code: int = await work(runtime)
            return code
        finally:
            await runtime.stop()

    return asyncio.run(main())
