"""Commands for knowledge out and data care: exports, the social report, administration.

    havainto export --format csv|xlsx|jsonl [--from D] [--to D] [--team T] [--region R]
                    [--lang fi|sv|en] [--output FILE|-]      observations in comparable codes
    havainto export --schema                                 the JSON Schema of one record
    havainto report --region R --from D --to D --format html|pdf --output FILE [--lang]
    havainto audit [--since D]                               the audit trail
    havainto teams list
    havainto people list [--team T] [--show-identities]
    havainto people revoke PERSON                            by pseudonym or number
    havainto people restore PERSON                           undo a revocation
    havainto invite --team T [--role R] [--expires 7d]       (see bot.cli) and
    havainto invite list [--all] / havainto invite revoke CODE
    havainto retention run                                   what the daily job does, now

The social report's figures are counted by ``storage.report_queries``; its
charts, HTML and PDF are drawn in a worker thread (``asyncio.to_thread``), as
every rendering is, never on the event loop.

Commands that touch data take ``--actor`` (default: the operator's login name)
and write it to the audit trail. ``bot.cli`` registers everything here with
``register(app)``.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer

from bot.cli_options import ConfigOption
from bot.config import Config, load_config

T = TypeVar("T")


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


def _actor(actor: str | None) -> str:
    return actor.strip() if actor and actor.strip() else default_actor()


class Language(StrEnum):
    fi = "fi"
    sv = "sv"
    en = "en"


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    jsonl = "jsonl"


class ReportFormat(StrEnum):
    html = "html"
    pdf = "pdf"


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("use a date like 2026-03-31", param_hint=option) from None


def _run(cfg: Config, work: Callable[[Any], Awaitable[T]]) -> T:
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


def _local(moment: datetime | None, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(zone).strftime(fmt) if moment is not None else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print aligned columns (the last one is left ragged)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _now() -> datetime:
    return datetime.now(UTC)


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
    cfg = load_config(config)
    zone = ZoneInfo(cfg.timezone)
    first, last = _day(since, "--from"), _day(until, "--to")
    if team is not None and cfg.team(team) is None:
        raise typer.BadParameter(f"unknown team {team!r}", param_hint="--team")
    if output == "-" and format is ExportFormat.xlsx and sys.stdout.isatty():
        raise typer.BadParameter(
            "an XLSX file is binary: give --output FILE", param_hint="--output"
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
        # A snapshot, not a write transaction: a long export must not hold SQLite's
        # write lock while workers log entries.
        async with db.snapshot() as session:
            records = iter_records(
                session, start, end, team, region, lang=lang.value, area_names=areas
            )
            with ExitStack() as stack:
                count: int
                if format is ExportFormat.xlsx:
                    target: str | IO[bytes] = output if output != "-" else sys.stdout.buffer
                    count = await write_xlsx(records, target, column_widths(lang.value, names))
                else:
                    out: IO[str] = (
                        sys.stdout
                        if output == "-"
                        else stack.enter_context(
                            open(output, "w", encoding="utf-8", newline="")  # noqa: ASYNC230
                        )
                    )
                    writer = write_csv if format is ExportFormat.csv else write_jsonl
                    count = await writer(records, out)
        what = (
            f"format={format.value} lang={lang.value} from={since or '*'} to={until or '*'} "
            f"team={team or '*'} region={region or '*'} "
            f"output={'stdout' if output == '-' else Path(output).name}"
        )
        await _audited(db, audit.EXPORT, actor, what, count, None if output == "-" else output)
        return count

    count = _run(cfg, work)
    if output != "-":
        typer.echo(f"{count} observations written to {output}", err=True)


async def _audited(
    db: Any, action: str, actor: str | None, what: str, rows: int, written: str | Path | None
) -> None:
    """Write the audit entry of a finished read; without it the file must not stay."""
    from storage import audit

    try:
        async with db.transaction() as session:
            await audit.record(session, _actor(actor), action, what, rows, _now())
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
    cfg = load_config(config)
    zone = ZoneInfo(cfg.timezone)
    first, last = _day(since, "--from"), _day(until, "--to")
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

    async def work(db: Any) -> int:
        from digests.report import render_html, render_pdf, social_report
        from storage import audit
        from storage.report_queries import report_figures

        async with db.snapshot() as session:
            figures = await report_figures(session, region, name, first, last, zone)
        today = datetime.now(zone).date()
        # Charts, template and PDF in a worker thread, as everywhere: never on the event loop.
        html = await asyncio.to_thread(lambda: render_html(social_report(figures, language, today)))
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

    total = _run(cfg, work)
    typer.echo(f"report of {total} observations written to {output}")


# --- audit ---------------------------------------------------------------------------------


def audit_command(
    since: Annotated[
        str | None, typer.Option("--since", help="From this day on (YYYY-MM-DD).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """The audit trail: who did what to the data, when, and to how many rows."""
    cfg = load_config(config)
    zone = ZoneInfo(cfg.timezone)
    first = _day(since, "--since")

    async def work(db: Any) -> list[Any]:
        from storage import audit
        from storage.export import local_bounds

        start = local_bounds(first, first, zone)[0] if first else None
        async with db.transaction() as session:
            return list(await audit.list_events(session, start))

    events = _run(cfg, work)
    _table(
        ("when", "actor", "action", "rows", "what"),
        [(_local(e.at, zone), e.actor, e.action, e.rows, e.what) for e in events],
    )


# --- teams, people, invites ----------------------------------------------------------------

teams_app = typer.Typer(help="Teams (from the config) and their figures.", no_args_is_help=True)
people_app = typer.Typer(help="Enrolled people: list, revoke, restore.", no_args_is_help=True)


@teams_app.command("list")
def teams_list(config: ConfigOption = None) -> None:
    """Every team with its region, language, enrolled people and observations."""
    cfg = load_config(config)

    async def work(db: Any) -> list[Any]:
        from storage.admin import list_teams

        async with db.transaction() as session:
            return await list_teams(session)

    rows = _run(cfg, work)
    configured = {t.id for t in cfg.teams}
    _table(
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


@people_app.command("list")
def people_list(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    show_identities: Annotated[
        bool,
        typer.Option(
            "--show-identities",
            help="Also show chat identities (administrators only; written to the audit trail).",
        ),
    ] = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """People by pseudonym, role, team, enrolment and last active day (never chat ids)."""
    cfg = load_config(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> list[Any]:
        from storage.admin import list_people, record_identities_shown

        async with db.transaction() as session:
            rows = await list_people(session, team, with_identities=show_identities)
            if show_identities:
                await record_identities_shown(session, rows, team, _actor(actor), _now())
            return rows

    rows = _run(cfg, work)
    headers = ["id", "pseudonym", "role", "team", "enrolled", "last active", "revoked"]
    if show_identities:
        headers.append("identities")
    table = []
    for r in rows:
        line: list[object] = [
            r.id,
            r.pseudonym,
            r.role,
            r.team,
            _local(r.enrolled_at, zone, "%Y-%m-%d"),
            _local(r.last_active_on, zone, "%Y-%m-%d"),
            _local(r.revoked_at, zone, "%Y-%m-%d"),
        ]
        if show_identities:
            line.append(
                "; ".join(f"{i.transport}:{i.external_id} chat {i.chat_id}" for i in r.identities)
            )
        table.append(line)
    _table(headers, table)


@people_app.command("revoke")
def people_revoke(
    person: Annotated[str, typer.Argument(help="Pseudonym (w-...) or number from `people list`.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """End a person's use of the bot. Their entries remain, pseudonymous."""
    cfg = load_config(config)

    async def work(db: Any) -> str:
        from storage.admin import revoke_person

        async with db.transaction() as session:
            revoked = await revoke_person(session, person, _actor(actor), _now())
            return revoked.pseudonym

    pseudonym = _admin_call(cfg, work)
    typer.echo(f"{pseudonym} revoked: the bot no longer answers them; their entries remain.")


@people_app.command("restore")
def people_restore(
    person: Annotated[str, typer.Argument(help="Pseudonym (w-...) or number from `people list`.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Undo a revocation: the person uses the bot again on their earlier accounts."""
    cfg = load_config(config)

    async def work(db: Any) -> str:
        from storage.admin import restore_person

        async with db.transaction() as session:
            restored = await restore_person(session, person, _actor(actor), _now())
            return restored.pseudonym

    pseudonym = _admin_call(cfg, work)
    typer.echo(f"{pseudonym} restored: the bot answers them again, with their earlier entries.")


def _admin_call(cfg: Config, work: Callable[[Any], Awaitable[T]]) -> T:
    from storage.admin import AdminError

    try:
        return _run(cfg, work)
    except AdminError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def invite_list(
    all_: Annotated[
        bool, typer.Option("--all", help="Also used, expired and revoked invites.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Invites still usable (all of them with --all), newest first."""
    cfg = load_config(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> list[Any]:
        from storage.admin import list_invites

        async with db.transaction() as session:
            return await list_invites(session, _now(), include_closed=all_)

    rows = _run(cfg, work)
    _table(
        ("code", "team", "role", "person", "created", "expires", "state"),
        [
            (
                r.code,
                r.team,
                r.role,
                r.person_id if r.person_id is not None else "-",
                _local(r.created_at, zone),
                _local(r.expires_at, zone),
                r.state,
            )
            for r in rows
        ],
    )


def invite_revoke(
    code: Annotated[str, typer.Argument(help="The invite code.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Make an unused invite code unusable."""
    cfg = load_config(config)

    async def work(db: Any) -> str:
        from storage.admin import revoke_invite

        async with db.transaction() as session:
            invite = await revoke_invite(session, code, _actor(actor), _now())
            return invite.code

    revoked = _admin_call(cfg, work)
    typer.echo(f"invite {revoked} revoked")


# --- retention ------------------------------------------------------------------------------

retention_app = typer.Typer(help="Retention of free text and drafts.", no_args_is_help=True)


@retention_app.command("run")
def retention_run(actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Erase now what the daily job would erase (free text past retention, stale drafts)."""
    cfg = load_config(config)

    async def work(db: Any) -> Any:
        from storage.retention import run_retention

        async with db.transaction() as session:
            return await run_retention(
                session,
                _now(),
                cfg.retention.free_text_months,
                cfg.retention.draft_days,
                actor=_actor(actor),
            )

    result = _run(cfg, work)
    typer.echo(
        f"free text erased from {result.texts_erased} entries "
        f"and {result.answers_erased} escalation answers; "
        f"{result.drafts_erased} stale drafts and {result.held_erased} unanswered held texts erased"
    )


def register(app: typer.Typer, invite_app: typer.Typer) -> None:
    """Add these commands to the ``havainto`` app and ``list``/``revoke`` to ``invite``."""
    app.command("export")(export)
    app.command("report")(report)
    app.command("audit")(audit_command)
    app.add_typer(teams_app, name="teams")
    app.add_typer(people_app, name="people")
    app.add_typer(retention_app, name="retention")
    invite_app.command("list")(invite_list)
    invite_app.command("revoke")(invite_revoke)
