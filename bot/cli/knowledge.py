"""The knowledge path from the command line: phenomena and proposals.

    havainto phenomenon create --region R [--team T] --theme CODE --title TEXT
    havainto phenomenon link PHENOMENON OBSERVATION [OBSERVATION ...]
    havainto phenomenon list [--region R] [--team T] [--all]
    havainto phenomenon show PHENOMENON
    havainto phenomenon close PHENOMENON
    havainto proposal create (--phenomenon N | --observation N) --text TEXT [--owner PERSON]
    havainto proposal move PROPOSAL STATUS [--body ID --on YYYY-MM-DD] [--note TEXT]
    havainto proposal list [--region R] [--phenomenon N]
    havainto proposal show PROPOSAL

Every change is audited with ``--actor``. Free text (titles, proposals, notes) goes
through the same identifier guard as chat: a personal identity code is removed, and
a text with another identifier is refused unless ``--allow-identifiers`` says it is
not about a person (a service's switchboard number, say).
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    clean_text,
    fail,
    load,
    local_time,
    parse_day,
    print_table,
    run_with_db,
    utc_now,
)
from bot.config import Config
from flows import knowledge as rules
from flows.taxonomy import THEME

phenomenon_app = typer.Typer(
    help="Phenomena: named patterns that observations show.", no_args_is_help=True
)
proposal_app = typer.Typer(
    help="Proposals for action, from proposed to an outcome.", no_args_is_help=True
)

AllowIdentifiers = Annotated[
    bool,
    typer.Option(
        "--allow-identifiers",
        help="Keep a phone number, e-mail or account number in the text (never a hetu).",
    ),
]


def _fail(message: str) -> NoReturn:
    fail(message)


def _region_of_team(cfg: Config, team: str | None, region: str | None) -> str:
    if team is not None:
        found = next((t for t in cfg.teams if t.id == team), None)
        if found is None:
            _fail(f"no team {team!r} in the config (teams: {', '.join(t.id for t in cfg.teams)})")
            raise AssertionError
        if region is not None and region != found.region:
            _fail(f"team {team} is in region {found.region}, not {region}")
        return found.region
    if region is None:
        _fail("give --region (or --team)")
        raise AssertionError
    if region not in {t.region for t in cfg.teams}:
        _fail(f"no team in region {region!r}")
    return region


def _language(cfg: Config, team: str | None, region: str) -> str:
    for t in cfg.teams:
        if (team is not None and t.id == team) or (team is None and t.region == region):
            return t.language
    return "fi"


# --- phenomena ---------------------------------------------------------------------------


@phenomenon_app.command("create")
def phenomenon_create(
    title: Annotated[str, typer.Option(help="A short name of the pattern.")],
    theme: Annotated[str, typer.Option(help="Theme code, e.g. theme.housing.")],
    region: Annotated[str | None, typer.Option(help="Region id (or give --team).")] = None,
    team: Annotated[
        str | None, typer.Option(help="A team's phenomenon (else region-wide).")
    ] = None,
    allow_identifiers: AllowIdentifiers = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a phenomenon; prints its number."""
    cfg = load(config)
    if theme not in THEME.codes:
        _fail(f"unknown theme {theme!r}; one of: {', '.join(THEME.codes)}")
    where = _region_of_team(cfg, team, region)
    text = clean_text(title, "--title", allow_identifiers)

    async def work(db: Any) -> int:
        from storage import knowledge

        async with db.transaction() as session:
            row = await knowledge.create_phenomenon(
                session,
                region=where,
                team_id=team,
                theme=theme,
                title=text,
                language=_language(cfg, team, where),
                actor_person_id=None,
                actor=actor_name(actor),
                now=utc_now(),
            )
            return row.id

    typer.echo(f"phenomenon #{run_with_db(cfg, work)}")


@phenomenon_app.command("link")
def phenomenon_link(
    phenomenon: Annotated[int, typer.Argument(help="Phenomenon number.")],
    observations: Annotated[list[int], typer.Argument(help="Observation numbers.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Link observations to a phenomenon (moving them from another one)."""
    cfg = load(config)

    async def work(db: Any) -> tuple[list[int], list[int]]:
        from storage import knowledge

        linked, skipped = [], []
        async with db.transaction() as session:
            if await knowledge.get_phenomenon(session, phenomenon) is None:
                _fail(f"no phenomenon #{phenomenon}")
            for number in observations:
                done = await knowledge.link(
                    session,
                    phenomenon,
                    number,
                    actor_person_id=None,
                    actor=actor_name(actor),
                    now=utc_now(),
                )
                (linked if done else skipped).append(number)
        return linked, skipped

    linked, skipped = run_with_db(cfg, work)
    typer.echo(f"linked to #{phenomenon}: {', '.join(map(str, linked)) or '-'}")
    if skipped:
        typer.echo(
            f"not linked (no such entry, withdrawn, or already there): "
            f"{', '.join(map(str, skipped))}"
        )


@phenomenon_app.command("close")
def phenomenon_close(
    phenomenon: Annotated[int, typer.Argument(help="Phenomenon number.")],
    reopen: Annotated[bool, typer.Option(help="Open it again instead.")] = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Close a phenomenon (no more "me too"); --reopen opens it again."""
    cfg = load(config)
    status = rules.PHENOMENON_OPEN if reopen else rules.PHENOMENON_CLOSED

    async def work(db: Any) -> bool:
        from storage import knowledge

        async with db.transaction() as session:
            return await knowledge.set_phenomenon_status(
                session, phenomenon, status, actor_name(actor), utc_now()
            )

    if not run_with_db(cfg, work):
        _fail(f"no phenomenon #{phenomenon}, or it is already {status}")
    typer.echo(f"phenomenon #{phenomenon}: {status}")


@phenomenon_app.command("list")
def phenomenon_list(
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team's (and region-wide).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
    config: ConfigOption = None,
) -> None:
    """Phenomena with their observation and confirmation counts."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)
    if team is not None and region is None:
        region = _region_of_team(cfg, team, None)

    async def work(db: Any) -> list[Any]:
        from storage import knowledge

        async with db.snapshot() as session:
            return await knowledge.list_phenomena(
                session,
                region=region,
                team_id=team,
                status=None if all_ else rules.PHENOMENON_OPEN,
            )

    views = run_with_db(cfg, work)
    print_table(
        ["#", "region", "team", "theme", "status", "obs", "me too", "moved", "title"],
        [
            [
                v.id,
                v.region,
                v.team_id or "-",
                v.theme,
                v.status,
                v.observations,
                v.confirmations,
                local_time(v.moved_at, zone, "%Y-%m-%d"),
                v.title,
            ]
            for v in views
        ],
    )


@phenomenon_app.command("show")
def phenomenon_show(
    phenomenon: Annotated[int, typer.Argument(help="Phenomenon number.")],
    config: ConfigOption = None,
) -> None:
    """One phenomenon: counts, linked observations and its proposals."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> tuple[Any, list[int], list[Any]]:
        from sqlalchemy import select

        from storage import knowledge
        from storage.models import PhenomenonLink

        async with db.snapshot() as session:
            view = await knowledge.phenomenon_view(session, phenomenon)
            if view is None:
                _fail(f"no phenomenon #{phenomenon}")
            linked = (
                await session.execute(
                    select(PhenomenonLink.observation_id)
                    .where(PhenomenonLink.phenomenon_id == phenomenon)
                    .order_by(PhenomenonLink.observation_id)
                )
            ).scalars()
            proposals = await knowledge.list_proposals(session, phenomenon_id=phenomenon)
            return view, list(linked), list(proposals)

    view, linked, proposals = run_with_db(cfg, work)
    typer.echo(f"#{view.id} {view.title}")
    typer.echo(f"  {view.theme}, {view.region}/{view.team_id or '-'}, {view.status}")
    typer.echo(f"  observations {view.observations}, confirmations {view.confirmations}")
    typer.echo(
        f"  created {local_time(view.created_at, zone)}, moved {local_time(view.moved_at, zone)}"
    )
    typer.echo(f"  linked: {', '.join(f'#{n}' for n in linked) or '-'}")
    for p in proposals:
        typer.echo(f"  proposal #{p.id} [{p.status}] {p.text}")


# --- proposals ---------------------------------------------------------------------------


@proposal_app.command("create")
def proposal_create(
    text: Annotated[str, typer.Option(help="What is proposed.")],
    phenomenon: Annotated[int | None, typer.Option(help="For this phenomenon.")] = None,
    observation: Annotated[int | None, typer.Option(help="For this escalated observation.")] = None,
    allow_identifiers: AllowIdentifiers = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a proposal (status: proposed); prints its number."""
    cfg = load(config)
    if (phenomenon is None) == (observation is None):
        _fail("give exactly one of --phenomenon and --observation")
    clean = clean_text(text, "--text", allow_identifiers)

    async def work(db: Any) -> int | None:
        from storage import knowledge

        async with db.transaction() as session:
            row = await knowledge.create_proposal(
                session,
                text=clean,
                phenomenon_id=phenomenon,
                observation_id=observation,
                proposer_person_id=None,
                owner_person_id=None,
                actor=actor_name(actor),
                now=utc_now(),
            )
            return None if row is None else row.id

    number = run_with_db(cfg, work)
    if number is None:
        _fail(
            f"no phenomenon #{phenomenon}"
            if phenomenon is not None
            else f"no escalated observation #{observation}"
        )
    typer.echo(f"proposal #{number}")


@proposal_app.command("move")
def proposal_move(
    proposal: Annotated[int, typer.Argument(help="Proposal number.")],
    status: Annotated[
        str, typer.Argument(help="presented, decided, implemented, rejected or no_action.")
    ],
    body: Annotated[str | None, typer.Option(help="The body it was presented to (id).")] = None,
    on: Annotated[str | None, typer.Option(help="Date it was presented: YYYY-MM-DD.")] = None,
    note: Annotated[str | None, typer.Option(help="A short note; what was decided.")] = None,
    allow_identifiers: AllowIdentifiers = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Move a proposal one step on its path."""
    cfg = load(config)
    day = parse_day(on, "--on")
    clean = clean_text(note, "--note", allow_identifiers) if note else None
    move = rules.Move(status, body, day, clean)

    async def work(db: Any) -> str | None:
        from storage import knowledge

        async with db.transaction() as session:
            return await knowledge.move_proposal(
                session,
                proposal,
                move,
                bodies=[b.id for b in cfg.bodies],
                actor_person_id=None,
                actor=actor_name(actor),
                now=utc_now(),
            )

    refused = run_with_db(cfg, work)
    if refused is not None:
        _fail(_explain(refused, cfg, proposal))
    typer.echo(f"proposal #{proposal}: {status}")


def _explain(key: str, cfg: Config, proposal: int) -> str:
    bodies = ", ".join(b.id for b in cfg.bodies) or "none configured: add [[bodies]] to the config"
    return {
        "knowledge.error.no_proposal": f"no proposal #{proposal}",
        "knowledge.error.unknown_status": "the status is one of "
        + ", ".join(rules.PROPOSAL_STATUSES),
        "knowledge.error.not_allowed": "that step does not follow the proposal's status "
        "(proposed -> presented -> decided -> implemented / rejected / no_action)",
        "knowledge.error.body_needed": f"give --body, one of: {bodies}",
        "knowledge.error.date_needed": "give --on YYYY-MM-DD, the date it was presented",
        "knowledge.error.decision_needed": "give --note with what was decided",
    }.get(key, key)


@proposal_app.command("list")
def proposal_list(
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    phenomenon: Annotated[int | None, typer.Option(help="Only this phenomenon's.")] = None,
    config: ConfigOption = None,
) -> None:
    """Proposals, the most recently moved first."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> list[Any]:
        from storage import knowledge

        async with db.snapshot() as session:
            return list(
                await knowledge.list_proposals(session, region=region, phenomenon_id=phenomenon)
            )

    print_table(
        ["#", "for", "status", "body", "presented", "moved", "text"],
        [
            [
                p.id,
                f"phenomenon #{p.phenomenon_id}"
                if p.phenomenon_id is not None
                else f"observation #{p.observation_id}",
                p.status,
                p.body or "-",
                p.presented_on.isoformat() if p.presented_on else "-",
                local_time(p.updated_at, zone, "%Y-%m-%d"),
                p.text,
            ]
            for p in run_with_db(cfg, work)
        ],
    )


@proposal_app.command("show")
def proposal_show(
    proposal: Annotated[int, typer.Argument(help="Proposal number.")],
    config: ConfigOption = None,
) -> None:
    """One proposal with every step: who, when, what."""
    cfg = load(config)
    zone = ZoneInfo(cfg.timezone)

    async def work(db: Any) -> tuple[Any, list[Any]]:
        from storage import knowledge

        async with db.snapshot() as session:
            row = await knowledge.get_proposal(session, proposal)
            if row is None:
                _fail(f"no proposal #{proposal}")
            return row, list(await knowledge.proposal_events(session, proposal))

    row, events = run_with_db(cfg, work)
    typer.echo(f"#{row.id} [{row.status}] {row.text}")
    for event in events:
        body = (
            cfg.body(event.body).label("fi") if event.body and cfg.body(event.body) else event.body
        )
        parts = [local_time(event.created_at, zone), event.status, event.actor]
        if body:
            parts.append(f"{body} {event.on_date.isoformat() if event.on_date else ''}".strip())
        if event.note:
            parts.append(event.note)
        typer.echo("  " + " | ".join(parts))
