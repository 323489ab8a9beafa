"""The figures of the weekly team digest and the monthly escalation summary.

The queries count and list; they decide nothing about what a digest shows.
``weekly_figures`` and ``monthly_figures`` return ``digests.model.WeeklyFigures``
and ``MonthlyFigures``: counts per code, the quote candidates, the escalated
observations with their status. What rose, which quotes are shown, how themes
are ranked and escalations grouped is decided by ``digests.rules``, the same
rules the social report uses; ``weekly_digest_data`` and
``monthly_summary_data`` are the two together.

Counting happens in SQL with ``GROUP BY`` over index ranges: a team's weeks
use ``(team_id, observed_at)``, a region's months ``(region, observed_at)``
and the whole organisation's months ``(team_id, observed_at)`` once per team.
So the cost follows the rows in the period, not the size of the table; only
grouped counts and the few rows a digest lists (quotes, escalated
observations) come back to Python.

Rates per active worker-week (``activity``): a worker is active in an ISO week
when they recorded an observation observed in it or confirmed one in it; one
grouped ``UNION ALL`` over observations and confirmations counts the distinct
workers per period and per ISO week cell, so only counts come back.

Withdrawn observations never count. An observation's escalation status is
its newest ``escalation_events`` row before ``as_of`` (``open`` when it has
none); ``as_of`` defaults to the end of the period, or to now while the period
is still running (a preview), so that the same past period always gives the
same digest and "days open" never counts past today.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    distinct,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from digests import rules
from digests.model import (
    AVERAGE_MONTHS,
    AVERAGE_WEEKS,
    RISING_MIN_COUNT,
    RISING_RATIO,
    Activity,
    EscalationItem,
    LeaderAnswer,
    MonthlyFigures,
    MonthlySummary,
    PhenomenonLine,
    ProposalLine,
    Quote,
    RegionFigures,
    StatusInfo,
    ThemeFigures,
    WeeklyDigest,
    WeeklyFigures,
)
from digests.numbers import LEADERSHIP as LEADERSHIP_AUDIENCE
from digests.numbers import Privacy
from digests.periods import (
    HELSINKI,
    TimeZone,
    iso_week_bounds,
    month_bounds,
    shift_month,
    shift_week,
    week_cells,
)
from flows import privacy
from flows.statuses import OPEN, OPEN_STATUSES
from flows.taxonomy import ESCALATED_CODES, LEADERSHIP, SHL48
from storage.models import Confirmation, EscalationEvent, Observation, Team

# The newest quotes of a week that ``digests.rules.pick_quotes`` chooses from: plenty for
# one per theme, and a bound on what a busy team's week reads.
QUOTE_CANDIDATES = 30
_IN_CHUNK = 500  # ids per IN (...) list, far below every backend's parameter limit


_ID_CHUNK = 5000  # ids per IN (...) list of a bare id look-up (limits: 32,766 / 32,767)


def _live() -> ColumnElement[bool]:
    return Observation.withdrawn_at.is_(None)


def _in_period(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Observation.observed_at >= start, Observation.observed_at < end)


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.sum(case((condition, 1), else_=0))


# --- escalation statuses -----------------------------------------------------------


def _days(start: datetime, end: datetime) -> int:
    return max((end - start).days, 0)


def reporting_moment(end: datetime, now: datetime | None = None) -> datetime:
    """The moment a period's statuses and days open are read at: its end, or now while
    it is still running (never a moment in the future)."""
    return min(end, now or datetime.now(UTC))


async def _statuses(
    session: AsyncSession, observation_ids: Sequence[int], as_of: datetime
) -> dict[int, StatusInfo]:
    """The newest status before ``as_of`` of each observation; absent ones are open."""
    latest: dict[int, StatusInfo] = {}
    ids = list(dict.fromkeys(observation_ids))
    for i in range(0, len(ids), _IN_CHUNK):
        rows = await session.execute(
            select(
                EscalationEvent.observation_id,
                EscalationEvent.status,
                EscalationEvent.created_at,
                EscalationEvent.text,
            )
            .where(
                EscalationEvent.observation_id.in_(ids[i : i + _IN_CHUNK]),
                EscalationEvent.created_at < as_of,
            )
            .order_by(EscalationEvent.created_at, EscalationEvent.id)
        )
        for observation_id, status, created_at, text in rows:
            first = latest.get(observation_id)
            acknowledged = first.acknowledged_at if first is not None else None
            if acknowledged is None and status != OPEN:
                acknowledged = created_at
            latest[observation_id] = StatusInfo(
                status=status,
                at=created_at,
                text=privacy.scrub(text),
                acknowledged_at=acknowledged,
            )
    return latest


def _escalation_columns() -> tuple[Any, ...]:
    return (
        Observation.id,
        Observation.team_id,
        Observation.region,
        Observation.escalation,
        Observation.theme,
        Observation.population_group,
        Observation.signal,
        Observation.area,
        Observation.description,
        Observation.action,
        Observation.observed_at,
        Observation.recorded_at,
    )


async def _escalation_items(
    session: AsyncSession,
    query: Select[Any],
    as_of: datetime,
    names: dict[str, str] | None = None,
) -> list[EscalationItem]:
    """The escalated observations ``query`` selects, with their status as of ``as_of``.

    Team names come from a separate look-up rather than a join: joined, SQLite plans
    the teams first and walks every row of every team's past.
    """
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    statuses = await _statuses(session, [row[0] for row in rows], as_of)
    if names is None:
        names = {
            team_id: name for team_id, name in await session.execute(select(Team.id, Team.name))
        }
    items = []
    for (
        observation_id,
        team_id,
        region,
        escalation,
        theme,
        group,
        signal,
        area,
        description,
        action,
        observed_at,
        recorded_at,
    ) in rows:
        status = statuses.get(observation_id, StatusInfo(OPEN))
        closed_at = status.at if not status.is_open and status.at is not None else as_of
        items.append(
            EscalationItem(
                observation_id=observation_id,
                team_id=team_id,
                team_name=names.get(team_id, team_id),
                region=region,
                escalation=escalation,
                theme=theme,
                population_group=group,
                signal=signal,
                area=area,
                description=privacy.scrub(description),
                action=privacy.scrub(action),
                observed_at=observed_at,
                recorded_at=recorded_at,
                status=status,
                days_open=_days(recorded_at, closed_at),
            )
        )
    return items


# --- active workers and worker-weeks ------------------------------------------------------


def _cell(column: Any, cells: Sequence[tuple[datetime, datetime]]) -> Any:
    """Which of the contiguous ``cells`` a moment falls in, as its index (the caller keeps
    the moment inside them)."""
    return case(
        *((column < end, literal_column(str(i))) for i, (_, end) in enumerate(cells)),
        else_=literal_column(str(len(cells) - 1)),
    )


async def active_workers(
    session: AsyncSession,
    cells: Sequence[tuple[datetime, datetime]],
    *,
    team_id: str | None = None,
    region: str | None = None,
    team_ids: Iterable[str] | None = None,
    by_region: bool = False,
) -> dict[tuple[int, str], int]:
    """The distinct active workers of each of the contiguous ``cells`` (and region, with
    ``by_region``; else the region is ""), keyed by the cell's index.

    Active: recorded an observation observed in the cell (withdrawn ones never count) or
    confirmed something in it ("me too", "we were two": ``confirmations.created_at``).
    Scope: one team, one region (its teams' confirmations), or ``team_ids`` (the whole
    organisation, sent as values so that each team's index range is read). One grouped
    query over both tables: only the counts come back.
    """
    if not cells:
        return {}
    since, until = cells[0][0], cells[-1][1]
    seen = [_live(), _in_period(since, until)]
    confirmed = [Confirmation.created_at >= since, Confirmation.created_at < until]
    if team_id is not None:
        seen.append(Observation.team_id == team_id)
        confirmed.append(Confirmation.team_id == team_id)
    elif region is not None:
        seen.append(Observation.region == region)
        confirmed.append(Team.region == region)
    elif team_ids is not None:
        seen.append(Observation.team_id.in_(sorted(team_ids)))
    observed = [_cell(Observation.observed_at, cells).label("cell"), Observation.person_id]
    confirming = [_cell(Confirmation.created_at, cells).label("cell"), Confirmation.person_id]
    if by_region:
        observed.append(Observation.region.label("region"))
        confirming.append(Team.region.label("region"))
    both = union_all(
        select(*observed).where(*seen),
        select(*confirming).join(Team, Team.id == Confirmation.team_id).where(*confirmed),
    ).subquery()
    keys = [both.c.cell, *([both.c.region] if by_region else [])]
    rows = await session.execute(
        select(*keys, func.count(distinct(both.c.person_id))).group_by(*keys)
    )
    return {(int(row[0]), str(row[1]) if by_region else ""): int(row[-1]) for row in rows}


async def activity(
    session: AsyncSession,
    periods: Sequence[tuple[datetime, datetime]],
    tz: TimeZone = HELSINKI,
    **scope: Any,
) -> Activity:
    """The ``Activity`` of the last of the contiguous ``periods``, against the ones before
    it (oldest first): distinct active workers per period, and worker-weeks (distinct
    workers per ISO week cell, ``digests.periods.week_cells``) summed per period.
    ``scope`` as in ``active_workers``."""
    cells: list[tuple[datetime, datetime]] = []
    owner: list[int] = []
    for index, (start, end) in enumerate(periods):
        for cell in week_cells(start, end, tz):
            cells.append(cell)
            owner.append(index)
    per_period = await active_workers(session, periods, **scope)
    per_cell = (
        per_period if cells == list(periods) else await active_workers(session, cells, **scope)
    )
    worker_weeks = [0] * len(periods)
    for (index, _), n in per_cell.items():
        worker_weeks[owner[index]] += n
    workers = [per_period.get((i, ""), 0) for i in range(len(periods))]
    return Activity(
        workers=workers[-1],
        worker_weeks=worker_weeks[-1],
        before_workers=tuple(workers[:-1]),
        before_worker_weeks=sum(worker_weeks[:-1]),
    )


# --- the weekly team digest ------------------------------------------------------------


async def weekly_digest_data(
    session: AsyncSession,
    team_id: str,
    week: str,
    tz: TimeZone = HELSINKI,
    *,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> WeeklyDigest:
    """Everything the weekly digest of ``team_id`` for ISO week ``week`` says.

    ``as_of`` (default: the end of the week) is the moment escalation statuses are read at.
    """
    digest = rules.weekly_digest(
        await weekly_figures(session, team_id, week, tz, as_of=as_of, now=now)
    )
    return await _with_knowledge(session, digest)


async def _with_knowledge(session: AsyncSession, digest: WeeklyDigest) -> WeeklyDigest:
    """The knowledge-path section: open phenomena, proposals and links that moved."""
    from storage import knowledge

    team = await session.get(Team, digest.team_id)
    if team is None:
        return digest
    open_views, proposals, linked = await knowledge.weekly_section(
        session, digest.team_id, team.region, digest.start, digest.end
    )

    def line(view: knowledge.PhenomenonView) -> PhenomenonLine:
        return PhenomenonLine(
            view.id, privacy.scrub(view.title) or "", view.observations, view.confirmations
        )

    return replace(
        digest,
        open_phenomena=[line(view) for view in open_views],
        linked_phenomena=[line(view) for view in linked],
        moved_proposals=[
            ProposalLine(p.id, p.status, privacy.scrub(p.text) or "", p.body) for p in proposals
        ],
    )


async def weekly_figures(
    session: AsyncSession,
    team_id: str,
    week: str,
    tz: TimeZone = HELSINKI,
    *,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> WeeklyFigures:
    """The counts and rows of ``team_id``'s ISO week ``week`` (and of the weeks before it
    the averages are taken over); ``as_of`` as in ``weekly_digest_data``."""
    team = await session.get(Team, team_id)
    if team is None:
        raise LookupError(f"unknown team {team_id!r}")
    start, end = iso_week_bounds(week, tz)
    history_start, _ = iso_week_bounds(shift_week(week, -AVERAGE_WEEKS), tz)
    as_of = as_of or reporting_moment(end, now)
    of_team = [Observation.team_id == team_id, _live()]
    this_week = [*of_team, _in_period(start, end)]

    total, workers = (
        await session.execute(
            select(func.count(), func.count(distinct(Observation.person_id))).where(*this_week)
        )
    ).one()

    in_week = Observation.observed_at >= start
    theme_rows = await session.execute(
        select(Observation.theme, _count_if(in_week), _count_if(~in_week))
        .where(*of_team, _in_period(history_start, end))
        .group_by(Observation.theme)
    )
    themes = [
        ThemeFigures(code, int(now or 0), int(before or 0)) for code, now, before in theme_rows
    ]

    # One grouped pass over the week gives signals, groups and the new/growing marks.
    signals: dict[str, int] = defaultdict(int)
    groups: dict[str, int] = defaultdict(int)
    new: dict[str, int] = defaultdict(int)
    growing: dict[str, int] = defaultdict(int)
    breakdown = await session.execute(
        select(
            Observation.theme,
            Observation.signal,
            Observation.population_group,
            Observation.frequency,
            func.count(),
        )
        .where(*this_week)
        .group_by(
            Observation.theme,
            Observation.signal,
            Observation.population_group,
            Observation.frequency,
        )
    )
    for theme, signal, group, frequency, n in breakdown:
        signals[signal] += n
        groups[group] += n
        if frequency == "frequency.new":
            new[theme] += n
        elif frequency == "frequency.growing":
            growing[theme] += n

    quotes = await _weekly_quotes(session, this_week)
    weeks = [iso_week_bounds(shift_week(week, -n), tz) for n in range(AVERAGE_WEEKS, 0, -1)]
    active = await activity(session, [*weeks, (start, end)], tz, team_id=team_id)

    escalations = await _escalation_items(
        session,
        select(*_escalation_columns())
        .where(*this_week, Observation.escalation.in_(ESCALATED_CODES))
        .order_by(Observation.observed_at, Observation.id),
        as_of,
        {team.id: team.name},
    )

    answer_rows = await session.execute(
        select(
            EscalationEvent.observation_id,
            Observation.theme,
            EscalationEvent.status,
            EscalationEvent.text,
            EscalationEvent.created_at,
        )
        .join(Observation, Observation.id == EscalationEvent.observation_id)
        .where(
            Observation.team_id == team_id,
            _live(),
            EscalationEvent.created_at >= start,
            EscalationEvent.created_at < end,
            EscalationEvent.text.is_not(None),
            EscalationEvent.text != "",
        )
        .order_by(EscalationEvent.created_at, EscalationEvent.id)
    )
    answers = [
        LeaderAnswer(observation_id, theme, status, privacy.scrub(text or ""), at)
        for observation_id, theme, status, text, at in answer_rows
    ]

    return WeeklyFigures(
        team_id=team.id,
        team_name=team.name,
        language=team.language,
        week=week,
        start=start,
        end=end,
        total=int(total),
        workers=int(workers),
        themes=themes,
        signals=dict(signals),
        groups=dict(groups),
        new=dict(new),
        growing=dict(growing),
        quotes=quotes,
        escalations=escalations,
        answers=answers,
        activity=active,
    )


async def _weekly_quotes(
    session: AsyncSession, this_week: Iterable[ColumnElement[bool]]
) -> list[Quote]:
    """The week's ``QUOTE_CANDIDATES`` newest quotes, newest first."""
    rows = await session.execute(
        select(Observation.quote, Observation.theme, Observation.id)
        .where(*this_week, Observation.quote.is_not(None), Observation.quote != "")
        .order_by(Observation.observed_at.desc(), Observation.id.desc())
        .limit(QUOTE_CANDIDATES)
    )
    return [Quote(privacy.scrub(text), theme, number) for text, theme, number in rows if text]


# --- the monthly escalation summary -------------------------------------------------------


async def _earlier_open(
    session: AsyncSession,
    region: str | None,
    start: datetime,
    as_of: datetime,
    names: dict[str, str],
) -> list[EscalationItem]:
    """Escalations observed before ``start`` and still open at ``as_of``, oldest first.

    Open at ``as_of`` means open now (``observations.escalation_status``, kept by triggers
    from the events; index ``ix_observations_escalation_status``) or changed since
    ``as_of`` (the events after it, by ``created_at``); the candidates' statuses at
    ``as_of`` then decide. So the cost follows the open escalations and the events
    since ``as_of``, not every escalation of the past.
    """
    scope = [Observation.region == region] if region is not None else []
    past = [
        *scope,
        _live(),
        Observation.escalation.in_(ESCALATED_CODES),
        Observation.observed_at < start,
    ]
    open_now = select(Observation.id).where(
        *past, Observation.escalation_status.in_(sorted(OPEN_STATUSES))
    )
    ids = {row[0] for row in await session.execute(open_now)}
    # Changed since as_of: the events by created_at, then their observations by primary key
    # only, the scope checked here. (With the scope in SQL, as a join or IN (subquery),
    # a planner may walk the region's past instead: SQLite without statistics, and
    # PostgreSQL's generic plan for asyncpg's prepared statement from its sixth run on,
    # 98 ms instead of 15.)
    changed = sorted(
        {
            row[0]
            for row in await session.execute(
                select(EscalationEvent.observation_id).where(EscalationEvent.created_at >= as_of)
            )
        }
        - ids
    )
    for i in range(0, len(changed), _ID_CHUNK):
        rows = await session.execute(
            select(
                Observation.id,
                Observation.region,
                Observation.escalation,
                Observation.observed_at,
                Observation.withdrawn_at,
            ).where(Observation.id.in_(changed[i : i + _ID_CHUNK]))
        )
        ids.update(
            observation_id
            for observation_id, region_, escalation, observed_at, withdrawn_at in rows
            if (region is None or region_ == region)
            and escalation in ESCALATED_CODES
            and observed_at < start
            and withdrawn_at is None
        )
    candidates = sorted(ids)
    items: list[EscalationItem] = []
    for i in range(0, len(candidates), _IN_CHUNK):
        items += await _escalation_items(
            session,
            select(*_escalation_columns()).where(Observation.id.in_(candidates[i : i + _IN_CHUNK])),
            as_of,
            names,
        )
    items = [item for item in items if item.status.is_open]
    items.sort(key=lambda item: (item.observed_at, item.observation_id))
    return items


def _scope_filter(region: str | None, team_ids: Iterable[str]) -> ColumnElement[bool]:
    if region is not None:
        return Observation.region == region
    # The whole organisation: every team's (team_id, observed_at) range, not a table scan.
    # The ids are sent as values: PostgreSQL plans an IN (subquery) as a hash join over
    # the whole table, but a list of constants as index ranges.
    return Observation.team_id.in_(sorted(team_ids))


async def monthly_summary_data(
    session: AsyncSession,
    region: str | None,
    month: str,
    tz: TimeZone = HELSINKI,
    *,
    scope_name: str | None = None,
    as_of: datetime | None = None,
    now: datetime | None = None,
    min_count: int = RISING_MIN_COUNT,
    ratio: float = RISING_RATIO,
    leading: int = rules.LEADING,
    audience: Privacy = LEADERSHIP_AUDIENCE,
    region_names: Mapping[str, str] | None = None,
) -> MonthlySummary:
    """The monthly summary of ``region`` (None: the whole organisation) for ``month``.

    Rising: at least ``min_count`` observations this month and at least ``ratio``
    times the average of the previous three months. ``as_of`` (default: the end of
    the month, or now during it) is the moment statuses and days open are read at.
    ``audience`` is what its readers may see of small counts (``digests.numbers``).
    """
    figures = await monthly_figures(
        session,
        region,
        month,
        tz,
        scope_name=scope_name,
        as_of=as_of,
        now=now,
        region_names=region_names,
    )
    return rules.monthly_summary(
        figures, min_count=min_count, ratio=ratio, leading=leading, privacy=audience
    )


async def monthly_figures(
    session: AsyncSession,
    region: str | None,
    month: str,
    tz: TimeZone = HELSINKI,
    *,
    scope_name: str | None = None,
    as_of: datetime | None = None,
    now: datetime | None = None,
    region_names: Mapping[str, str] | None = None,
) -> MonthlyFigures:
    """The counts and rows of ``region``'s (None: the whole organisation's) ``month`` and
    of the months before it the averages are taken over; ``as_of`` as in
    ``monthly_summary_data``. For the whole organisation every region's month too (its
    display name from ``region_names``, else its id), to be set side by side."""
    start, end = month_bounds(month, tz)
    history_start, _ = month_bounds(shift_month(month, -AVERAGE_MONTHS), tz)
    as_of = as_of or reporting_moment(end, now)
    names = {team_id: name for team_id, name in await session.execute(select(Team.id, Team.name))}
    scope = [_scope_filter(region, names), _live()]
    this_month = [*scope, _in_period(start, end)]

    total, teams, workers, escalated, shl48_count = (
        await session.execute(
            select(
                func.count(),
                func.count(distinct(Observation.team_id)),
                func.count(distinct(Observation.person_id)),
                _count_if(Observation.escalation == LEADERSHIP),
                _count_if(Observation.escalation == SHL48),
            ).where(*this_month)
        )
    ).one()

    in_month = Observation.observed_at >= start
    theme_rows = (
        await session.execute(
            select(
                Observation.theme,
                _count_if(in_month),
                _count_if(~in_month),
                func.count(distinct(case((in_month, Observation.team_id), else_=None))),
            )
            .where(*scope, _in_period(history_start, end))
            .group_by(Observation.theme)
        )
    ).all()
    themes = [
        ThemeFigures(code, int(now or 0), int(before or 0), int(spread or 0))
        for code, now, before, spread in theme_rows
    ]

    items = await _escalation_items(
        session,
        select(*_escalation_columns())
        .where(*this_month, Observation.escalation.in_(ESCALATED_CODES))
        .order_by(Observation.observed_at, Observation.id),
        as_of,
        names,
    )
    earlier_open = await _earlier_open(session, region, start, as_of, names)
    from storage import knowledge

    proposals = [
        ProposalLine(p.id, p.status, privacy.scrub(p.text) or "", p.body)
        for p in await knowledge.moved_proposals(session, region, start, min(end, as_of))
    ]
    months = [month_bounds(shift_month(month, -n), tz) for n in range(AVERAGE_MONTHS, 0, -1)]
    in_scope: dict[str, Any] = (
        {"region": region} if region is not None else {"team_ids": list(names)}
    )
    active = await activity(session, [*months, (start, end)], tz, **in_scope)
    regions = (
        await _regions(session, start, end, tz, list(names), region_names or {})
        if region is None
        else []
    )

    return MonthlyFigures(
        region=region,
        scope_name=scope_name or region or "",
        month=month,
        start=start,
        end=end,
        as_of=as_of,
        total=int(total),
        teams=int(teams),
        workers=int(workers),
        escalated=int(escalated or 0),
        shl48_count=int(shl48_count or 0),
        themes=themes,
        escalations=items,
        earlier_open=earlier_open,
        proposals=proposals,
        activity=active,
        regions=regions,
    )


async def _regions(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    tz: TimeZone,
    team_ids: list[str],
    region_names: Mapping[str, str],
) -> list[RegionFigures]:
    """Every region of the organisation in ``[start, end)``: observations per theme, the
    distinct active workers and the worker-weeks (regions without any included)."""
    regions = sorted({row[0] for row in await session.execute(select(Team.region).distinct())})
    themes: dict[str, dict[str, int]] = {r: {} for r in regions}
    rows = await session.execute(
        select(Observation.region, Observation.theme, func.count())
        .where(_scope_filter(None, team_ids), _live(), _in_period(start, end))
        .group_by(Observation.region, Observation.theme)
    )
    for region_, theme, n in rows:
        themes.setdefault(region_, {})[theme] = int(n)
    scope: dict[str, Any] = {"team_ids": team_ids, "by_region": True}
    workers = await active_workers(session, [(start, end)], **scope)
    weeks: dict[str, int] = defaultdict(int)
    for (_, region_), n in (
        await active_workers(session, week_cells(start, end, tz), **scope)
    ).items():
        weeks[region_] += n
    return [
        RegionFigures(
            region=r,
            name=region_names.get(r, r),
            total=sum(themes[r].values()),
            workers=workers.get((0, r), 0),
            worker_weeks=weeks.get(r, 0),
            themes=themes[r],
        )
        for r in sorted(themes)
    ]
