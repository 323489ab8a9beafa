"""The figures of the social report, counted by the database for one region and period.

The digest queries (``storage/digest_queries.py``) answer fixed weeks and
months per team or leadership channel; the social report covers any period
of a region and compares it with the period of equal length just before, so
its counts live here. Everything is grouped in SQL except the months, which
are bucketed in local time (Europe/Helsinki) in Python from a stream of
timestamps: portable across SQLite and PostgreSQL and small either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from digests.periods import week_cells
from digests.report import (
    ComparisonFigures,
    EscalationLine,
    PeerFigures,
    QuoteLine,
    ReportFigures,
)
from flows.privacy import scrub
from flows.statuses import OPEN
from flows.taxonomy import ESCALATED_CODES, SHL48
from storage.digest_queries import active_workers, activity
from storage.export import local_bounds
from storage.models import EscalationEvent, Observation, Team

MARKED_GROWING = ("frequency.growing", "frequency.new")
QUOTES_CONSIDERED = 200


def _in(
    region: str | None, since: datetime, until: datetime, team: str | None = None
) -> ColumnElement[bool]:
    """A region's observations (a team's with ``team``; every region's with neither)."""
    clauses = [
        Observation.withdrawn_at.is_(None),
        Observation.observed_at >= since,
        Observation.observed_at < until,
    ]
    if region is not None:
        clauses.append(Observation.region == region)
    if team is not None:
        clauses.append(Observation.team_id == team)
    return and_(*clauses)


async def _counts(
    session: AsyncSession, where: ColumnElement[bool], *columns: Any
) -> dict[Any, int]:
    rows = await session.execute(select(*columns, func.count()).where(where).group_by(*columns))
    result: dict[Any, int] = {}
    for row in rows:
        key = row[0] if len(columns) == 1 else tuple(row[: len(columns)])
        if key is not None:
            result[key] = int(row[-1])
    return result


async def _scalar(session: AsyncSession, what: Any, where: ColumnElement[bool]) -> int:
    return int((await session.execute(select(what).where(where))).scalar_one() or 0)


def _months(start: date, end: date) -> list[date]:
    months, current = [], date(start.year, start.month, 1)
    while current <= end:
        months.append(current)
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return months


async def report_figures(
    session: AsyncSession,
    region: str | None,
    region_name: str,
    start: date,
    end: date,
    zone: tzinfo,
    *,
    team: str | None = None,
) -> ReportFigures:
    """Everything the social report of ``region`` for ``start``..``end`` (inclusive) shows:
    of one team with ``team``, of the whole organisation with ``region`` None."""
    since, until = local_bounds(start, end, zone)
    days = (end - start).days + 1
    before_since, _ = local_bounds(start - timedelta(days=days), start, zone)
    now = _in(region, since, until, team)
    before = _in(region, before_since, since, team)

    total = await _scalar(session, func.count(), now)
    monthly: Counter[date] = Counter()
    stream = await session.stream_scalars(
        select(Observation.observed_at).where(now).execution_options(yield_per=2000)
    )
    async for moment in stream:
        local = moment.astimezone(zone)
        monthly[date(local.year, local.month, 1)] += 1

    return ReportFigures(
        region=team or region or "",
        region_name=region_name,
        start=start,
        end=end,
        total=total,
        previous_total=await _scalar(session, func.count(), before),
        good_practices=await _scalar(
            session, func.count(), and_(now, Observation.polarity == "polarity.good_practice")
        ),
        marked_growing=await _scalar(
            session, func.count(), and_(now, Observation.frequency.in_(MARKED_GROWING))
        ),
        teams=await _scalar(session, func.count(func.distinct(Observation.team_id)), now),
        workers=await _scalar(session, func.count(func.distinct(Observation.person_id)), now),
        themes=await _counts(session, now, Observation.theme),
        previous_themes=await _counts(session, before, Observation.theme),
        signals=await _counts(session, now, Observation.signal),
        groups=await _counts(session, now, Observation.population_group),
        combos=await _counts(session, now, Observation.theme, Observation.signal),
        previous_combos=await _counts(session, before, Observation.theme, Observation.signal),
        monthly=[(month, monthly.get(month, 0)) for month in _months(start, end)],
        escalations=await _escalations(session, now, zone),
        quotes=await _quotes(session, now, zone),
        escalated=await _scalar(
            session, func.count(), and_(now, Observation.escalation.in_(ESCALATED_CODES))
        ),
        shl48=await _scalar(session, func.count(), and_(now, Observation.escalation == SHL48)),
        comparison=await comparison_figures(
            session, region, before_since, since, until, zone, team=team
        ),
    )


async def comparison_figures(
    session: AsyncSession,
    region: str | None,
    before_since: datetime,
    since: datetime,
    until: datetime,
    zone: tzinfo,
    *,
    team: str | None = None,
) -> ComparisonFigures:
    """The comparison section's figures: the scope's own active workers and worker-weeks in
    ``[since, until)`` and in the previous period ``[before_since, since)`` (the team's
    with ``team``, the region's, or everybody's with neither), and the whole
    organisation's observations (per theme), active workers and worker-weeks in
    ``[since, until)``. A team is compared with its ``region`` too (``region``'s
    figures, counted on the region); the organisation (no region, no team) only with its
    previous period (``of_organisation``)."""
    team_ids = sorted((await session.execute(select(Team.id))).scalars())
    if team is not None:
        own = await activity(session, [(before_since, since), (since, until)], zone, team_id=team)
    else:
        own = await activity(session, [(before_since, since), (since, until)], zone, region=region)
    organisation = await _peer(session, since, until, zone, team_ids=team_ids)
    peer = None
    if team is not None and region is not None:
        peer = await _peer(session, since, until, zone, region=region)
    return ComparisonFigures(
        activity=own,
        organisation_total=organisation.total,
        organisation_themes=organisation.themes,
        organisation_workers=organisation.workers,
        organisation_worker_weeks=organisation.worker_weeks,
        region=peer,
        of_organisation=team is None and region is None,
    )


async def _peer(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    zone: tzinfo,
    *,
    region: str | None = None,
    team_ids: Sequence[str] | None = None,
) -> PeerFigures:
    """A region's (or, with ``team_ids``, the organisation's teams') observations per
    theme, active workers and active worker-weeks in ``[since, until)``."""
    where = _in(region, since, until)
    if team_ids is not None:
        where = and_(where, Observation.team_id.in_(team_ids))
    themes = await _counts(session, where, Observation.theme)
    scope: dict[str, Any] = {"region": region} if team_ids is None else {"team_ids": team_ids}
    workers = await active_workers(session, [(since, until)], **scope)
    weeks = await active_workers(session, week_cells(since, until, zone), **scope)
    return PeerFigures(
        total=sum(themes.values()),
        themes=themes,
        workers=workers.get((0, ""), 0),
        worker_weeks=sum(weeks.values()),
    )


async def _escalations(
    session: AsyncSession, where: ColumnElement[bool], zone: tzinfo
) -> Sequence[EscalationLine]:
    latest_text = (
        select(EscalationEvent.text)
        .where(EscalationEvent.observation_id == Observation.id, EscalationEvent.text.is_not(None))
        .order_by(EscalationEvent.created_at.desc(), EscalationEvent.id.desc())
        .limit(1)
        .correlate(Observation)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            Observation.id,
            Observation.observed_at,
            Observation.escalation,
            Observation.theme,
            Observation.escalation_status,
            latest_text,
            Observation.team_id,
            Observation.region,
            Observation.area,
        )
        .where(where, Observation.escalation.in_(ESCALATED_CODES))
        .order_by(Observation.observed_at, Observation.id)
    )
    return [
        EscalationLine(
            observation_id=oid,
            observed_on=observed.astimezone(zone).date(),
            kind=kind,
            theme=theme,
            status=status or OPEN,
            response=scrub(text),
            team_id=team_id,
            region=region,
            area=area,
        )
        for oid, observed, kind, theme, status, text, team_id, region, area in rows
    ]


async def _quotes(
    session: AsyncSession, where: ColumnElement[bool], zone: tzinfo
) -> Sequence[QuoteLine]:
    rows = await session.execute(
        select(Observation.quote, Observation.theme, Observation.observed_at)
        .where(where, Observation.quote.is_not(None), Observation.quote != "")
        .order_by(Observation.observed_at.desc(), Observation.id.desc())
        .limit(QUOTES_CONSIDERED)
    )
    return [
        QuoteLine(
            text=scrub(quote) or "", theme=theme, observed_on=observed.astimezone(zone).date()
        )
        for quote, theme, observed in rows
    ]
