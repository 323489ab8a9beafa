"""Knowledge out and data care: exports, the social report, the audit trail, retention.

    havainto export --format csv|xlsx|jsonl [--from D] [--to D] [--team T] [--region R]
                    [--lang fi|sv|en] [--output FILE|-]      observations in comparable codes
    havainto export --schema                                 the JSON Schema of one record
    havainto report --region R --from D --to D --format html|pdf --output FILE [--lang]
    havainto audit [--since D]                               the audit trail
    havainto teams list                                      teams and their figures
    havainto retention run                                   what the daily job does, now

The social report's figures are counted by ``storage.report_queries``; its
charts, HTML and PDF are drawn in a worker thread (``asyncio.to_thread``), as
every rendering is, never on the event loop.

Commands that touch data take ``--actor`` (default: the operator's login name)
and write it to the audit trail.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    load,
    local_time,
    parse_day,
    print_table,
    run_with_db,
    silence_stdout,
    utc_now,
)
from flows.official_codes import with_code


class Language(StrEnum):
    fi = "fi"
    sv = "sv"
    en = "en"


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    jsonl = "jsonl"


class CsvDialectName(StrEnum):
    semicolon = "semicolon"
    comma = "comma"


class ReportFormat(StrEnum):
    html = "html"
    pdf = "pdf"


# --- export --------------------------------------------------------------------------


def export(
    format: Annotated[
        ExportFormat, typer.Option("--format", help="csv, xlsx or jsonl.")
    ] = ExportFormat.jsonl,
    since: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD), inclusive.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.")
    ] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    lang: Annotated[Language, typer.Option("--lang", help="Language of the labels.")] = (
        Language.fi
    ),
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write, or - for standard output.")
    ] = "-",
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON Schema of a record and stop.")
    ] = False,
    csv_dialect: Annotated[
        CsvDialectName | None,
        typer.Option(
            "--csv-dialect",
            help="semicolon (';' and a UTF-8 BOM, for Excel in Finland) or comma (RFC 4180); "
            "default: [csv] dialect of the config, semicolon.",
        ),
    ] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Observations in comparable codes, with labels in one language, one row each.

    The reporting worker appears only as a pseudonym that is stable within this
    export and different in the next one. Chat identities never appear.
    """
    from storage.export import dump_schema

    if schema:
        typer.echo(dump_schema())
        return
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)
    first, last = parse_day(since, "--from"), parse_day(until, "--to")
    if team is not None and cfg.team(team) is None:
        raise typer.BadParameter(f"unknown team {team!r}", param_hint="--team")
    if output == "-" and format is ExportFormat.xlsx and sys.stdout.isatty():
        raise typer.BadParameter(
            "an XLSX file is binary: give --output FILE", param_hint="--output"
        )

    dialect = csv_dialect.value if csv_dialect is not None else cfg.csv.dialect
    what = (
        f"format={format.value} lang={lang.value} from={since or '*'} to={until or '*'} "
        f"team={team or '*'} region={region or '*'} "
        f"output={'stdout' if output == '-' else Path(output).name}"
    )

    async def work(db: Any) -> int:
        from storage import audit
        from storage.export import (
            column_widths,
            iter_records,
            local_bounds,
            write_csv,
            write_jsonl,
            write_xlsx,
        )

        start = local_bounds(first, first, zone)[0] if first else None
        end = local_bounds(last, last, zone)[1] if last else None
        areas = {(t.id, a.id): a.name for t in cfg.teams for a in t.areas}
        names = {
            "team": max(len(t.id) for t in cfg.teams),
            "team_name": max(len(t.name) for t in cfg.teams),
            "region": max(len(t.region) for t in cfg.teams),
            "area": max((len(a) for _, a in areas), default=4),
            "area_name": max((len(n) for n in areas.values()), default=4),
        }
        # On the audit trail before the first record leaves; completed or marked
        # interrupted after (a reader such as `head` may close the pipe early).
        async with db.transaction() as session:
            event = await audit.begin(session, actor_name(actor), audit.EXPORT, what, utc_now())
        handed = 0

        async def counted(records: AsyncIterator[Any]) -> AsyncIterator[Any]:
            nonlocal handed
            async for record in records:
                handed += 1
                yield record

        state = audit.INTERRUPTED
        try:
            # A snapshot, not a write transaction: a long export must not hold SQLite's
            # write lock while workers log entries.
            async with db.snapshot() as session:
                records = counted(
                    iter_records(
                        session,
                        start,
                        end,
                        team,
                        region,
                        lang=lang.value,
                        area_names=areas,
                        codes=cfg.official_codes(),
                    )
                )
                with ExitStack() as stack:
                    if format is ExportFormat.xlsx:
                        target: str | IO[bytes] = output if output != "-" else sys.stdout.buffer
                        await write_xlsx(records, target, column_widths(lang.value, names))
                    else:
                        out: IO[str] = (
                            sys.stdout
                            if output == "-"
                            else stack.enter_context(
                                open(output, "w", encoding="utf-8", newline="")  # noqa: ASYNC230
                            )
                        )
                        if format is ExportFormat.csv:
                            await write_csv(records, out, dialect)
                        else:
                            await write_jsonl(records, out)
                    if output == "-":
                        sys.stdout.flush()  # a closed pipe shows here, not after "completed"
            state = audit.COMPLETED
        except BrokenPipeError:
            silence_stdout()  # the reader has all it wanted: exit 0, quietly
        finally:
            finished = False
            try:
                async with db.transaction() as session:
                    await audit.finish(session, event, what, handed, state)
                finished = True
            finally:
                if output != "-" and not (finished and state == audit.COMPLETED):
                    # Without a completed entry, an export file must not stay.
                    Path(output).unlink(missing_ok=True)  # noqa: ASYNC240 - a CLI
        return handed

    count = run_with_db(cfg, work)
    if output != "-":
        typer.echo(f"{count} observations written to {output}", err=True)


async def _audited(
    db: Any, action: str, actor: str | None, what: str, rows: int, written: str | Path | None
) -> None:
    """Write the audit entry of a finished read; without it the file must not stay."""
    from storage import audit

    try:
        async with db.transaction() as session:
            await audit.record(session, actor_name(actor), action, what, rows, utc_now())
    except BaseException:
        if written is not None:
            Path(written).unlink(missing_ok=True)  # noqa: ASYNC240 - a CLI, nothing else runs
        raise


# --- the social report -------------------------------------------------------------------


def report(
    region: Annotated[str, typer.Option(help="Region id (as in the teams' config).")],
    since: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    until: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    format: Annotated[ReportFormat, typer.Option("--format", help="html or pdf.")] = (
        ReportFormat.pdf
    ),
    lang: Annotated[
        Language | None,
        typer.Option("--lang", help="fi, sv or en (default: the region's first team's)."),
    ] = None,
    region_name: Annotated[
        str | None, typer.Option(help="Name printed on the report (default: from the id).")
    ] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """The social report (sosiaalinen raportti) of a region for a period, as HTML or PDF."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)
    first, last = parse_day(since, "--from"), parse_day(until, "--to")
    assert first is not None and last is not None
    if last < first:
        raise typer.BadParameter("--to is before --from", param_hint="--to")
    teams = [t for t in cfg.teams if t.region == region]
    if not teams:
        known = ", ".join(sorted({t.region for t in cfg.teams}))
        raise typer.BadParameter(
            f"unknown region {region!r} (known: {known})", param_hint="--region"
        )
    language = lang.value if lang else teams[0].language
    fallback = region.replace("_", " ").title()
    name = region_name or (cfg.region_name(region) if region in cfg.regions else fallback)
    # The county's official code beside its name ("Helsinki (90)"), where the config has it.
    name = with_code(name, cfg.region_code(region))

    async def work(db: Any) -> int:
        from digests.numbers import Privacy
        from digests.report import render_html, render_pdf, social_report
        from storage import audit
        from storage.report_queries import report_figures

        async with db.snapshot() as session:
            figures = await report_figures(session, region, name, first, last, zone)
        today = datetime.now(zone).date()
        # Charts, template and PDF in a worker thread, as everywhere: never on the event loop.
        # Small counts as "< 5" ([privacy] min_cell): a report is read outside the teams.
        privacy = Privacy(min_cell=cfg.privacy.min_cell)
        html = await asyncio.to_thread(
            lambda: render_html(social_report(figures, language, today, privacy))
        )
        if format is ReportFormat.pdf:
            output.write_bytes(await asyncio.to_thread(render_pdf, html))
        else:
            output.write_text(html, encoding="utf-8")
        what = (
            f"region={region} from={first} to={last} format={format.value} "
            f"lang={language} output={output.name}"
        )
        await _audited(db, audit.REPORT, actor, what, figures.total, output)
        return figures.total

    total = run_with_db(cfg, work)
    typer.echo(f"report of {total} observations written to {output}")


# --- audit ---------------------------------------------------------------------------------


def audit_command(
    since: Annotated[
        str | None, typer.Option("--since", help="From this day on (YYYY-MM-DD).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """The audit trail: who did what to the data, when, and to how many rows."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)
    first = parse_day(since, "--since")

    async def work(db: Any) -> list[Any]:
        from storage import audit
        from storage.export import local_bounds

        start = local_bounds(first, first, zone)[0] if first else None
        async with db.transaction() as session:
            return list(await audit.list_events(session, start))

    events = run_with_db(cfg, work)
    print_table(
        ("when", "actor", "action", "rows", "what"),
        [(local_time(e.at, zone), e.actor, e.action, e.rows, e.what) for e in events],
    )


# --- teams ----------------------------------------------------------------------------------

teams_app = typer.Typer(help="Teams (from the config) and their figures.", no_args_is_help=True)


@teams_app.command("list")
def teams_list(config: ConfigOption = None) -> None:
    """Every team with its region, language, enrolled people and observations."""
    cfg = load(config)

    async def work(db: Any) -> list[Any]:
        from storage.admin import list_teams

        async with db.transaction() as session:
            return await list_teams(session)

    rows = run_with_db(cfg, work)
    configured = {t.id for t in cfg.teams}
    print_table(
        ("team", "region", "language", "people", "observations", "name"),
        [
            (
                r.id + ("" if r.id in configured else " (not in config)"),
                r.region,
                r.language,
                r.people,
                r.observations,
                r.name,
            )
            for r in rows
        ],
    )


# --- retention ------------------------------------------------------------------------------

retention_app = typer.Typer(help="Retention of free text and drafts.", no_args_is_help=True)


@retention_app.command("run")
def retention_run(actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Erase now what the daily job would erase (free text past retention, stale drafts)."""
    cfg = load(config)

    async def work(db: Any) -> Any:
        from storage.retention import run_retention

        async with db.transaction() as session:
            return await run_retention(
                session,
                utc_now(),
                cfg.retention.free_text_months,
                cfg.retention.draft_days,
                actor=actor_name(actor),
            )

    result = run_with_db(cfg, work)
    typer.echo(
        f"free text erased from {result.texts_erased} entries "
        f"and {result.answers_erased} escalation answers; "
        f"{result.drafts_erased} stale drafts and {result.held_erased} unanswered held texts erased"
    )
