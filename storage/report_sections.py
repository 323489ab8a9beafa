"""The figures of the report's knowledge-path, editing and area sections
(``digests.report_sections``), counted and listed by the database for one scope and period.

The scope is a team (``team``), a region (``region``) or the whole organisation
(neither), as in ``storage.report_queries``. Names the database does not know (areas,
teams, decision bodies, scopes) come from the config and are handed in. Free text read
back out (proposals, decisions, descriptions, conclusions) is scrubbed of hetus, as
every read-out is (``flows.privacy.scrub``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, tzinfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from digests.report_sections import (
    NoteLine,
    PhenomenonLine,
    PracticeLine,
    ProposalLine,
    SectionFigures,
)
from flows import knowledge as path
from flows.privacy import scrub
from storage import knowledge
from storage.export import local_bounds
from storage.models import Observation, Phenomenon, Proposal, ProposalEvent
from storage.report_notes import notes_for

GOOD_PRACTICE = "polarity.good_practice"
PRACTICES_CONSIDERED = 200
PHENOMENA_CONSIDERED = 500
PROPOSALS_CONSIDERED = 200
_STATUS_ORDER = {status: i for i, status in enumerate(path.PROPOSAL_STATUSES)}


def _scope(
    region: str | None, team: str | None, region_column: object, team_column: object
) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if region is not None:
        clauses.append(region_column == region)  # type: ignore[arg-type]
    if team is not None:
        clauses.append(team_column == team)  # type: ignore[arg-type]
    return clauses


async def section_figures(
    session: AsyncSession,
    *,
    region: str | None,
    team: str | None,
    start: date,
    end: date,
    zone: tzinfo,
    region_teams: Iterable[str] = (),
    area_names: Mapping[str, str] | None = None,
    team_names: Mapping[str, str] | None = None,
    scope_names: Callable[[str, str], str] = lambda kind, scope_id: scope_id,
    body_name: Callable[[str], str] = lambda body: body,
    appendix_name: str = "",
) -> SectionFigures:
    """Everything ``digests.report_sections`` shows for the scope and ``start``..``end``.

    ``scope_names(kind, id)`` names a note's scope, ``body_name(id)`` a decision body,
    both in the report's language."""
    since, until = local_bounds(start, end, zone)
    observed = and_(
        Observation.withdrawn_at.is_(None),
        Observation.observed_at >= since,
        Observation.observed_at < until,
        *_scope(region, team, Observation.region, Observation.team_id),
    )
    teams = team_names or {}

    notes = [
        NoteLine(
            scope_kind=n.scope_kind,
            scope_name=scope_names(n.scope_kind, n.scope_id),
            period=n.period,
            role=n.author_role,
            written_on=n.created_at.astimezone(zone).date(),
            text=scrub(n.text),
        )
        for n in await notes_for(
            session, team=team, region=region, region_teams=region_teams, start=start, end=end
        )
    ]

    # Proposals that moved in the period, and those still open from before it.
    moved = select(ProposalEvent.proposal_id).where(
        ProposalEvent.created_at >= since, ProposalEvent.created_at < until
    )
    open_before = and_(
        Proposal.created_at < until, Proposal.status.not_in(tuple(path.PROPOSAL_CLOSED))
    )
    rows = (
        await session.execute(
            select(Proposal, Phenomenon.title)
            .outerjoin(Phenomenon, Phenomenon.id == Proposal.phenomenon_id)
            .where(
                or_(Proposal.id.in_(moved), open_before),
                *_scope(region, team, Proposal.region, Proposal.team_id),
            )
            .order_by(Proposal.updated_at.desc(), Proposal.id.desc())
            .limit(PROPOSALS_CONSIDERED)
        )
    ).all()
    # Each proposal's latest note on a step (the leader's one line), newest first.
    latest_notes: dict[int, str] = {}
    if rows:
        noted = await session.execute(
            select(ProposalEvent.proposal_id, ProposalEvent.note)
            .where(
                ProposalEvent.proposal_id.in_([p.id for p, _ in rows]),
                ProposalEvent.note.is_not(None),
                ProposalEvent.note != "",
            )
            .order_by(ProposalEvent.created_at.desc(), ProposalEvent.id.desc())
        )
        for proposal_id, note in noted.all():
            if note:
                latest_notes.setdefault(proposal_id, note)
    proposals = sorted(
        (
            ProposalLine(
                number=p.id,
                text=scrub(p.text),
                status=p.status,
                subject=title or "",
                body=body_name(p.body) if p.body else None,
                presented_on=p.presented_on,
                decision=scrub(p.decision),
                moved_on=p.updated_at.astimezone(zone).date(),
                note=scrub(latest_notes.get(p.id)),
            )
            for p, title in rows
        ),
        key=lambda line: (-_STATUS_ORDER.get(line.status, 0), -line.number),
    )

    # Phenomena alive in the period: made before its end, open or moved during it.
    views = await knowledge.list_phenomena(
        session, region=region, team_id=team, limit=PHENOMENA_CONSIDERED
    )
    if team is not None:
        views = [v for v in views if v.team_id == team]
    phenomena = [
        PhenomenonLine(
            number=v.id,
            title=scrub(v.title),
            theme=v.theme,
            status=v.status,
            observations=v.observations,
            confirmations=v.confirmations,
            team_name=teams.get(v.team_id, v.team_id) if v.team_id and team is None else "",
        )
        for v in views
        if v.created_at < until and (v.status == path.PHENOMENON_OPEN or v.moved_at >= since)
    ]

    practice_themes = {
        theme: int(n)
        for theme, n in await session.execute(
            select(Observation.theme, func.count())
            .where(observed, Observation.polarity == GOOD_PRACTICE)
            .group_by(Observation.theme)
        )
    }
    practice_rows = await session.execute(
        select(Observation.description, Observation.theme, Observation.observed_at)
        .where(
            observed,
            Observation.polarity == GOOD_PRACTICE,
            Observation.description.is_not(None),
            Observation.description != "",
        )
        .order_by(Observation.observed_at.desc(), Observation.id.desc())
        .limit(PRACTICES_CONSIDERED)
    )
    practices = [
        PracticeLine(scrub(text) or "", theme, at.astimezone(zone).date())
        for text, theme, at in practice_rows
    ]
    areas = {
        (area or ""): int(n)
        for area, n in await session.execute(
            select(Observation.area, func.count()).where(observed).group_by(Observation.area)
        )
    }
    return SectionFigures(
        notes=notes,
        proposals=proposals,
        phenomena=phenomena,
        practice_themes=practice_themes,
        practices=practices,
        areas=areas,
        area_names=dict(area_names or {}),
        appendix_name=appendix_name,
    )
