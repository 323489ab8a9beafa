"""People and invites: who may use the bot.

    havainto invite --team T [--role R] [--expires 7d] [--person N]   print an invite code
    havainto invite list [--all]                             invites still usable (or all)
    havainto invite revoke CODE                              make an unused code unusable
    havainto people list [--team T] [--show-identities]
    havainto people revoke PERSON                            by pseudonym or number
    havainto people restore PERSON                           undo a revocation

Commands that touch data take ``--actor`` (default: the operator's login name)
and write it to the audit trail.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    load,
    local_time,
    print_table,
    run_with_db,
    utc_now,
)
from bot.config import ROLES, Config

T = TypeVar("T")

invite_app = typer.Typer(help="Invite codes: create (with --team), list, revoke.")
people_app = typer.Typer(help="Enrolled people: list, revoke, restore.", no_args_is_help=True)


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text.lower())
    if not match:
        raise typer.BadParameter("use a number and a unit: 30m, 12h, 7d or 2w")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: amount})


def _admin_call(cfg: Config, work: Callable[[Any], Awaitable[T]]) -> T:
    from storage.admin import AdminError

    try:
        return run_with_db(cfg, work)
    except AdminError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


# --- invites -----------------------------------------------------------------------------------


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
    cfg = load(config)
    if cfg.team(team) is None:
        raise typer.BadParameter(f"unknown team {team!r}", param_hint="--team")
    valid_for = parse_duration(expires)
    from bot import transports as registry

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
    for registration in registry.REGISTRY.values():
        hint = registration.invite_hint(cfg, code)
        if hint is not None:
            typer.echo(hint)  # e.g. Telegram's link
    typer.echo(f"Send the bot: /start {code}  (Matrix: !start {code})")
    typer.echo(code)


@invite_app.command("list")
def invite_list(
    all_: Annotated[
        bool, typer.Option("--all", help="Also used, expired and revoked invites.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Invites still usable (all of them with --all), newest first."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> list[Any]:
        from storage.admin import list_invites

        async with db.transaction() as session:
            return await list_invites(session, utc_now(), include_closed=all_)

    rows = run_with_db(cfg, work)
    print_table(
        ("code", "team", "role", "person", "created", "expires", "state"),
        [
            (
                r.code,
                r.team,
                r.role,
                r.person_id if r.person_id is not None else "-",
                local_time(r.created_at, zone),
                local_time(r.expires_at, zone),
                r.state,
            )
            for r in rows
        ],
    )


@invite_app.command("revoke")
def invite_revoke(
    code: Annotated[str, typer.Argument(help="The invite code.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Make an unused invite code unusable."""
    cfg = load(config)

    async def work(db: Any) -> str:
        from storage.admin import revoke_invite

        async with db.transaction() as session:
            invite = await revoke_invite(session, code, actor_name(actor), utc_now())
            return invite.code

    revoked = _admin_call(cfg, work)
    typer.echo(f"invite {revoked} revoked")


# --- people ------------------------------------------------------------------------------------


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
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> list[Any]:
        from storage.admin import list_people, record_identities_shown

        async with db.transaction() as session:
            rows = await list_people(session, team, with_identities=show_identities)
            if show_identities:
                await record_identities_shown(session, rows, team, actor_name(actor), utc_now())
            return rows

    rows = run_with_db(cfg, work)
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
            local_time(r.enrolled_at, zone, "%Y-%m-%d"),
            local_time(r.last_active_on, zone, "%Y-%m-%d"),
            local_time(r.revoked_at, zone, "%Y-%m-%d"),
        ]
        if show_identities:
            line.append(
                "; ".join(f"{i.transport}:{i.external_id} chat {i.chat_id}" for i in r.identities)
            )
        table.append(line)
    print_table(headers, table)


@people_app.command("revoke")
def people_revoke(
    person: Annotated[str, typer.Argument(help="Pseudonym (w-...) or number from `people list`.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """End a person's use of the bot. Their entries remain, pseudonymous."""
    cfg = load(config)

    async def work(db: Any) -> str:
        from storage.admin import revoke_person

        async with db.transaction() as session:
            revoked = await revoke_person(session, person, actor_name(actor), utc_now())
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
    cfg = load(config)

    async def work(db: Any) -> str:
        from storage.admin import restore_person

        async with db.transaction() as session:
            restored = await restore_person(session, person, actor_name(actor), utc_now())
            return restored.pseudonym

    pseudonym = _admin_call(cfg, work)
    typer.echo(f"{pseudonym} restored: the bot answers them again, with their earlier entries.")
