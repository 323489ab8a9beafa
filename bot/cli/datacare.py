"""Knowledge out and data care: exports, the social report, the audit trail, retention.

    havainto export --format FORMAT [--from D] [--to D] [--team T] [--region R]
                    [--lang fi|sv|en] [--output FILE|-]      observations in comparable codes
    havainto export --schema                                 the JSON Schema of one record
    havainto report (--region R | --team T | --organisation) (--period P | --from D --to D)
                    --format html|pdf --output FILE [--lang] [--appendix FILE]
    havainto report notes (--region R | --team T | --organisation) --period P --file F
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
    clean_text,
    load,
    local_time,
    parse_day,
    print_table,
    run_with_db,
    silence_stdout,
    utc_now,
)
from storage.export_formats import DEFAULT_FORMAT, FORMATS


class Language(StrEnum):
    fi = "fi"
    sv = "sv"
    en = "en"


# The formats of storage/export_formats.py (a new format is listed there only).
ExportFormat = StrEnum("ExportFormat", {name: name for name in FORMATS})
DEFAULT_EXPORT_FORMAT = ExportFormat(DEFAULT_FORMAT)
FORMAT_HELP = ", ".join(list(FORMATS)[:-1]) + f" or {list(FORMATS)[-1]}."


class CsvDialectName(StrEnum):
    semicolon = "semicolon"
    comma = "comma"


class ReportFormat(StrEnum):
    html = "html"
    pdf = "pdf"


# --- export --------------------------------------------------------------------------


def export(
    format: Annotated[
        ExportFormat, typer.Option("--format", help=FORMAT_HELP)
    ] = DEFAULT_EXPORT_FORMAT,
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
    chosen = FORMATS[format.value]
    if output == "-" and chosen.binary and sys.stdout.isatty():
        raise typer.BadParameter(
            f"an {chosen.name.upper()} file is binary: give --output FILE", param_hint="--output"
        )

    dialect = csv_dialect.value if csv_dialect is not None else cfg.csv.dialect
    what = (
        f"format={format.value} lang={lang.value} from={since or '*'} to={until or '*'} "
        f"team={team or '*'} region={region or '*'} "
        f"output={'stdout' if output == '-' else Path(output).name}"
    )

    async def work(db: Any) -> int:
        from storage import audit
        from storage.export import iter_records, local_bounds
        from storage.export_formats import WriteOptions

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
                    out: IO[Any]
                    if output == "-":
                        out = sys.stdout.buffer if chosen.binary else sys.stdout
                    elif chosen.binary:
                        out = stack.enter_context(open(output, "wb"))  # noqa: ASYNC230
                    else:
                        out = stack.enter_context(
                            open(output, "w", encoding="utf-8", newline="")  # noqa: ASYNC230
                        )
                    options = WriteOptions(lang.value, dialect, names)
                    await chosen.write(records, out, options)
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

report_app = typer.Typer(
    help="The social report (sosiaalinen raportti), and the conclusions printed in it.",
    invoke_without_command=True,
)


def _named_period(period: str) -> Any:
    """``--period`` (2026-H2, 2026, 2026-11) as a ``ReportPeriod``, or a short error."""
    from digests.report_periods import parse_report_period

    try:
        return parse_report_period(period)
    except ValueError:
        raise typer.BadParameter(
            "use 2026-H1, 2026-H2, 2026 (a year) or 2026-11 (a month)", param_hint="--period"
        ) from None


def _one_scope(region: str | None, team: str | None, organisation: bool) -> None:
    if sum((region is not None, team is not None, organisation)) != 1:
        raise typer.BadParameter(
            "give one of --region R, --team T or --organisation", param_hint="--region"
        )


def _period_range(period: str | None, since: str | None, until: str | None) -> tuple[Any, Any]:
    """``--period`` (2026-H2, 2026, 2026-11) or ``--from``/``--to``: first and last day."""
    if period is not None:
        if since is not None or until is not None:
            raise typer.BadParameter(
                "give --period or --from/--to, not both", param_hint="--period"
            )
        named = _named_period(period)
        return named.start, named.end
    if since is None or until is None:
        raise typer.BadParameter("give --period 2026-H2, or --from and --to", param_hint="--period")
    first, last = parse_day(since, "--from"), parse_day(until, "--to")
    assert first is not None and last is not None
    if last < first:
        raise typer.BadParameter("--to is before --from", param_hint="--to")
    return first, last


@report_app.callback()
def report(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(help="Region id (as in the teams' config).")] = None,
    team: Annotated[str | None, typer.Option(help="A team's report instead of a region's.")] = None,
    organisation: Annotated[
        bool, typer.Option("--organisation", help="The whole organisation's report.")
    ] = False,
    period: Annotated[
        str | None, typer.Option(help="2026-H1, 2026-H2, 2026 (a year) or 2026-11 (a month).")
    ] = None,
    since: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD).")] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    appendix: Annotated[
        Path | None,
        typer.Option(
            help="The full list of escalations as CSV (default: beside --output, "
            "ending -liite.csv / -bilaga.csv / -appendix.csv).",
        ),
    ] = None,
    format: Annotated[ReportFormat, typer.Option("--format", help="html or pdf.")] = (
        ReportFormat.pdf
    ),
    lang: Annotated[
        Language | None,
        typer.Option("--lang", help="fi, sv or en (default: the team's or region's)."),
    ] = None,
    region_name: Annotated[
        str | None, typer.Option(help="Name printed on the report (default: from the config).")
    ] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """The social report (sosiaalinen raportti) of a region, a team or the whole
    organisation for a period, as HTML or PDF, with its escalations as an appendix CSV."""
    if ctx.invoked_subcommand is not None:
        return
    if output is None:
        raise typer.BadParameter("give the file to write", param_hint="--output")
    _one_scope(region, team, organisation)
    first, last = _period_range(period, since, until)
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)
    from bot.reports import report_scope

    try:
        scope = report_scope(
            cfg,
            team=team,
            region=region,
            lang=lang.value if lang else None,
            name=region_name,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--team" if team else "--region") from None
    language = scope.language
    from flows.i18n import t

    extra = t(language, "delivery.appendix_name", domain="socialreport")
    appendix_path = appendix or output.with_name(f"{output.stem}-{extra}.csv")

    async def work(db: Any) -> int:
        from bot.reports import gather_figures
        from digests.numbers import Privacy
        from digests.report import appendix_rows, render_html, render_pdf, social_report
        from digests.report_sections import appendix_csv
        from storage import audit

        async with db.snapshot() as session:
            figures = await gather_figures(
                session, cfg, scope, first, last, language, appendix_path.name
            )
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
        if figures.escalations:
            rows = appendix_rows(figures.escalations)
            appendix_path.write_bytes(appendix_csv(rows, language, cfg.csv.dialect, figures.codes))
        where = f"{scope.kind}={scope.id}" if scope.id else f"scope={scope.key}"
        what = (
            f"{where} from={first} to={last} format={format.value} "
            f"lang={language} output={output.name}"
        )
        await _audited(db, audit.REPORT, actor, what, figures.total, output)
        return figures.total

    total = run_with_db(cfg, work)
    typer.echo(f"report of {total} observations written to {output}")
    if appendix_path.exists():
        typer.echo(f"escalations written to {appendix_path}")


@report_app.command("notes")
def report_notes(
    period: Annotated[str, typer.Option(help="2026-H1, 2026-H2, 2026 (a year) or 2026-11.")],
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", help="The conclusions (plain text or Markdown; - reads stdin)."
        ),
    ],
    region: Annotated[str | None, typer.Option(help="The region's conclusions.")] = None,
    team: Annotated[str | None, typer.Option(help="The team's conclusions.")] = None,
    organisation: Annotated[
        bool, typer.Option("--organisation", help="The whole organisation's conclusions.")
    ] = False,
    role: Annotated[
        str | None,
        typer.Option(help="The writer's role, printed with the date: lead, leader or admin."),
    ] = None,
    lang: Annotated[
        Language | None, typer.Option("--lang", help="The language it is written in.")
    ] = None,
    allow_identifiers: Annotated[
        bool,
        typer.Option(
            "--allow-identifiers",
            help="Keep a phone number, e-mail or account number in the text (never a hetu).",
        ),
    ] = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Store the conclusions of a team, a region or the organisation for a period; every
    report of that scope covering the period prints them with the role and the date."""
    from bot.reports import ReportDesk, report_scope
    from flows import conclusions as rules

    _one_scope(region, team, organisation)
    named = _named_period(period)
    written_by = role or ("lead" if team is not None else "leader" if region else "admin")
    if written_by not in rules.AUTHOR_ROLES:
        raise typer.BadParameter("lead, leader or admin", param_hint="--role")
    cfg = load(config)
    try:
        scope = report_scope(cfg, team=team, region=region, lang=lang.value if lang else None)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--team" if team else "--region") from None
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise typer.BadParameter(f"cannot read it ({error})", param_hint="--file") from None
    text = clean_text(raw, "--file", allow_identifiers)
    if len(text) > rules.NOTE_MAX:
        raise typer.BadParameter(
            f"{len(text)} characters; at most {rules.NOTE_MAX} (a page of the report)",
            param_hint="--file",
        )
    target = scope.target(named.label, scope.language)

    async def work(db: Any) -> int:
        async with db.transaction() as session:
            return await ReportDesk.add(
                session,
                target,
                named,
                text,
                written_by,
                actor_name(actor),
                scope.language,
                utc_now(),
            )

    number = run_with_db(cfg, work)
    typer.echo(f"conclusions #{number} stored for {scope.key} {named.label} ({written_by})")


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
