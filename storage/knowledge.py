"""The knowledge path in the database: phenomena, confirmations, proposals, path notices.

The rules (which proposal step may follow which, where an observation stands, what
"sounds like" what) are in ``flows.knowledge``; this module keeps the facts and
answers the questions the bot, the CLI and the digests ask of them. Every change
runs in the caller's transaction together with its audit row, and queues the
workers' path notices (``PathNotice``): everyone who recorded or confirmed an
observation of the phenomenon or proposal that moved hears of it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, union
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from digests.periods import HELSINKI, week_of
from flows import knowledge as rules
from flows.taxonomy import ESCALATED_CODES
from storage import audit
from storage.models import (
    Confirmation,
    Delivery,
    Identity,
    Notification,
    Observation,
    PathNotice,
    Person,
    Phenomenon,
    PhenomenonLink,
    Proposal,
    ProposalEvent,
)

PHENOMENON_CREATE = "phenomenon.create"
PHENOMENON_LINK = "phenomenon.link"
PHENOMENON_STATUS = "phenomenon.status"
CONFIRM = "confirmation.add"
PROPOSAL_CREATE = "proposal.create"
PROPOSAL_MOVE = "proposal.move"
PROPOSAL_OWNER = "proposal.owner"

SUGGESTION_DAYS = 30


# --- phenomena ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhenomenonView:
    id: int
    region: str
    team_id: str | None
    theme: str
    title: str
    language: str
    status: str
    observations: int
    confirmations: int
    created_at: datetime
    moved_at: datetime


async def create_phenomenon(
    session: AsyncSession,
    *,
    region: str,
    team_id: str | None,
    theme: str,
    title: str,
    language: str,
    actor_person_id: int | None,
    actor: str,
    now: datetime,
) -> Phenomenon:
    row = Phenomenon(
        region=region,
        team_id=team_id,
        theme=theme,
        title=title.strip()[: rules.TITLE_MAX],
        language=language,
        status=rules.PHENOMENON_OPEN,
        created_by=actor_person_id,
        created_at=now,
        moved_at=now,
    )
    session.add(row)
    await session.flush()
    await audit.record(session, actor, PHENOMENON_CREATE, f"phenomenon #{row.id}", 1, now)
    return row


async def get_phenomenon(session: AsyncSession, phenomenon_id: int) -> Phenomenon | None:
    if not 0 < phenomenon_id < 2**31:
        return None
    return await session.get(Phenomenon, phenomenon_id)


def _observation_count():  # type: ignore[no-untyped-def]
    return (
        select(func.count())
        .select_from(PhenomenonLink)
        .join(Observation, Observation.id == PhenomenonLink.observation_id)
        .where(
            PhenomenonLink.phenomenon_id == Phenomenon.id,
            Observation.withdrawn_at.is_(None),
        )
        .scalar_subquery()
    )


def _confirmation_count():  # type: ignore[no-untyped-def]
    linked = select(PhenomenonLink.observation_id).where(
        PhenomenonLink.phenomenon_id == Phenomenon.id
    )
    return (
        select(func.count())
        .select_from(Confirmation)
        .where(
            or_(
                Confirmation.phenomenon_id == Phenomenon.id,
                Confirmation.observation_id.in_(linked),
            )
        )
        .scalar_subquery()
    )


async def list_phenomena(
    session: AsyncSession,
    *,
    region: str | None = None,
    team_id: str | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[PhenomenonView]:
    """Phenomena with their counts, newest movement first. ``team_id`` also takes the
    region-wide phenomena of the team's region when ``region`` is given too."""
    query = _phenomena_query(region, team_id, status, limit)
    rows = (await session.execute(query)).all()
    return [_view(row, observations, confirmations) for row, observations, confirmations in rows]


def _phenomena_query(region: Any, team_id: Any, status: str | None, limit: int) -> Select[Any]:
    """``list_phenomena``'s statement; ``region`` and ``team_id`` may be bind parameters."""
    query = select(Phenomenon, _observation_count(), _confirmation_count())
    if region is not None and team_id is not None:
        query = query.where(
            Phenomenon.region == region,
            or_(Phenomenon.team_id == team_id, Phenomenon.team_id.is_(None)),
        )
    elif region is not None:
        query = query.where(Phenomenon.region == region)
    elif team_id is not None:
        query = query.where(Phenomenon.team_id == team_id)
    if status is not None:
        query = query.where(Phenomenon.status == status)
    return query.order_by(Phenomenon.moved_at.desc(), Phenomenon.id.desc()).limit(limit)


async def phenomenon_view(session: AsyncSession, phenomenon_id: int) -> PhenomenonView | None:
    if not 0 < phenomenon_id < 2**31:
        return None
    row = (
        await session.execute(
            select(Phenomenon, _observation_count(), _confirmation_count()).where(
                Phenomenon.id == phenomenon_id
            )
        )
    ).first()
    return None if row is None else _view(*row)


def _view(row: Phenomenon, observations: int, confirmations: int) -> PhenomenonView:
    return PhenomenonView(
        id=row.id,
        region=row.region,
        team_id=row.team_id,
        theme=row.theme,
        title=row.title,
        language=row.language,
        status=row.status,
        observations=int(observations or 0),
        confirmations=int(confirmations or 0),
        created_at=row.created_at,
        moved_at=row.moved_at,
    )


async def set_phenomenon_status(
    session: AsyncSession, phenomenon_id: int, status: str, actor: str, now: datetime
) -> bool:
    row = await get_phenomenon(session, phenomenon_id)
    if row is None or status not in rules.PHENOMENON_STATUSES or row.status == status:
        return False
    row.status = status
    row.moved_at = now
    await audit.record(
        session, actor, PHENOMENON_STATUS, f"phenomenon #{phenomenon_id} {status}", 1, now
    )
    await queue_path_notices(
        session, phenomenon_id=phenomenon_id, step=f"phenomenon.{status}", now=now
    )
    return True


async def link(
    session: AsyncSession,
    phenomenon_id: int,
    observation_id: int,
    *,
    actor_person_id: int | None,
    actor: str,
    now: datetime,
) -> bool:
    """Link an observation to a phenomenon (moving it from another one). False when
    either does not exist or it is already linked there."""
    phenomenon = await get_phenomenon(session, phenomenon_id)
    observation = (
        await session.get(Observation, observation_id) if 0 < observation_id < 2**31 else None
    )
    if phenomenon is None or observation is None or observation.withdrawn_at is not None:
        return False
    existing = await session.get(PhenomenonLink, observation_id)
    if existing is not None:
        if existing.phenomenon_id == phenomenon_id:
            return False
        existing.phenomenon_id = phenomenon_id
        existing.linked_by = actor_person_id
        existing.linked_at = now
    else:
        session.add(
            PhenomenonLink(
                observation_id=observation_id,
                phenomenon_id=phenomenon_id,
                linked_by=actor_person_id,
                linked_at=now,
            )
        )
    phenomenon.moved_at = now
    await session.flush()
    await audit.record(
        session,
        actor,
        PHENOMENON_LINK,
        f"observation #{observation_id} -> phenomenon #{phenomenon_id}",
        1,
        now,
    )
    await proposal_from_action(session, observation, phenomenon_id=phenomenon_id, now=now)
    # The recorder (and whoever confirmed the entry) hears that it became part of a pattern.
    await _queue(
        session,
        _people_of_observation(observation_id),
        f"phenomenon:{phenomenon_id}",
        "linked",
        now,
    )
    return True


async def phenomenon_of(session: AsyncSession, observation_id: int) -> Phenomenon | None:
    return (
        await session.execute(
            select(Phenomenon)
            .join(PhenomenonLink, PhenomenonLink.phenomenon_id == Phenomenon.id)
            .where(PhenomenonLink.observation_id == observation_id)
        )
    ).scalar_one_or_none()


# --- confirmations ("me too") -----------------------------------------------------------


async def confirm(
    session: AsyncSession,
    *,
    person_id: int,
    team_id: str,
    kind: str,
    phenomenon_id: int | None = None,
    observation_id: int | None = None,
    text: str | None = None,
    now: datetime,
) -> bool:
    """Record a confirmation; False when this person already confirmed it (or it is their
    own entry, or the target does not exist). ``text`` must already be screened."""
    if (phenomenon_id is None) == (observation_id is None):
        raise ValueError("confirm exactly one phenomenon or one observation")
    if phenomenon_id is not None:
        target = await get_phenomenon(session, phenomenon_id)
        if target is None or target.status != rules.PHENOMENON_OPEN:
            return False
        duplicate = Confirmation.phenomenon_id == phenomenon_id
    else:
        assert observation_id is not None
        entry = (
            await session.get(Observation, observation_id) if 0 < observation_id < 2**31 else None
        )
        if entry is None or entry.withdrawn_at is not None or entry.person_id == person_id:
            return False
        duplicate = Confirmation.observation_id == observation_id
    exists = await session.scalar(
        select(Confirmation.id).where(Confirmation.person_id == person_id, duplicate)
    )
    if exists is not None:
        return False
    line = (text or "").strip()[: rules.CONFIRMATION_TEXT_MAX] or None
    session.add(
        Confirmation(
            person_id=person_id,
            team_id=team_id,
            kind=kind,
            phenomenon_id=phenomenon_id,
            observation_id=observation_id,
            text=line,
            created_at=now,
        )
    )
    if phenomenon_id is not None:
        phenomenon = await get_phenomenon(session, phenomenon_id)
        assert phenomenon is not None
        phenomenon.moved_at = now
    await session.flush()
    what = (
        f"phenomenon #{phenomenon_id}"
        if phenomenon_id is not None
        else f"observation #{observation_id}"
    )
    await audit.record(session, audit.person_actor(person_id), CONFIRM, f"{kind} {what}", 1, now)
    return True


async def confirmations_of_observation(session: AsyncSession, observation_id: int) -> int:
    phenomenon = await phenomenon_of(session, observation_id)
    conditions = [Confirmation.observation_id == observation_id]
    if phenomenon is not None:
        conditions.append(Confirmation.phenomenon_id == phenomenon.id)
    return int(
        await session.scalar(select(func.count()).select_from(Confirmation).where(or_(*conditions)))
        or 0
    )


async def candidates(
    session: AsyncSession, *, team_id: str, region: str, person_id: int, now: datetime
) -> list[rules.Candidate]:
    """What a worker of ``team_id`` might mean by "me too": the open phenomena of the team
    and its region, and the team's observations of the last 30 days by other workers."""
    since = now - timedelta(days=SUGGESTION_DAYS)
    out: list[rules.Candidate] = []
    phenomena = await session.execute(_OPEN_PHENOMENA, {"region": region, "team": team_id})
    for row, observations, confirmations in phenomena.all():
        view = _view(row, observations, confirmations)
        out.append(
            rules.Candidate(
                "phenomenon", view.id, view.title, view.observations + view.confirmations
            )
        )
    rows = (
        await session.execute(
            _RECENT_OF_OTHERS, {"team": team_id, "person": person_id, "since": since}
        )
    ).all()
    out.extend(rules.Candidate("observation", row.id, row.description or "", 1) for row in rows)
    return out


# Read for every new text (the "me too" suggestion): built once, as the statements of the
# capture path in storage.repo.
_OPEN_PHENOMENA = _phenomena_query(
    bindparam("region"), bindparam("team"), rules.PHENOMENON_OPEN, limit=100
)
_OBSERVATIONS = Observation.__table__.c
_RECENT_OF_OTHERS = (
    select(_OBSERVATIONS.id, _OBSERVATIONS.description)
    .where(
        _OBSERVATIONS.team_id == bindparam("team"),
        _OBSERVATIONS.person_id != bindparam("person"),
        _OBSERVATIONS.withdrawn_at.is_(None),
        _OBSERVATIONS.recorded_at >= bindparam("since"),
        _OBSERVATIONS.description.is_not(None),
    )
    .order_by(_OBSERVATIONS.recorded_at.desc())
    .limit(200)
)


# --- proposals ------------------------------------------------------------------------


async def create_proposal(
    session: AsyncSession,
    *,
    text: str,
    phenomenon_id: int | None = None,
    observation_id: int | None = None,
    proposer_person_id: int | None,
    owner_person_id: int | None,
    actor: str,
    now: datetime,
) -> Proposal | None:
    """A new proposal (status ``proposed``) for a phenomenon or one escalated observation.
    None when the target does not exist (or the observation was not escalated)."""
    if (phenomenon_id is None) == (observation_id is None):
        raise ValueError("a proposal belongs to exactly one phenomenon or one observation")
    if phenomenon_id is not None:
        phenomenon = await get_phenomenon(session, phenomenon_id)
        if phenomenon is None:
            return None
        region, team_id = phenomenon.region, phenomenon.team_id
        phenomenon.moved_at = now
    else:
        assert observation_id is not None
        entry = (
            await session.get(Observation, observation_id) if 0 < observation_id < 2**31 else None
        )
        if entry is None or entry.escalation not in ESCALATED_CODES or entry.withdrawn_at:
            return None
        region, team_id = entry.region, entry.team_id
    row = Proposal(
        phenomenon_id=phenomenon_id,
        observation_id=observation_id,
        region=region,
        team_id=team_id,
        text=text.strip(),
        proposer_person_id=proposer_person_id,
        owner_person_id=owner_person_id,
        status=rules.PROPOSED,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    session.add(
        ProposalEvent(
            proposal_id=row.id,
            status=rules.PROPOSED,
            actor_person_id=proposer_person_id,
            actor=actor,
            created_at=now,
        )
    )
    await audit.record(session, actor, PROPOSAL_CREATE, f"proposal #{row.id}", 1, now)
    await _queue(session, _people_of_proposal(row), f"proposal:{row.id}", rules.PROPOSED, now)
    return row


async def proposal_from_action(
    session: AsyncSession,
    entry: Observation,
    *,
    phenomenon_id: int | None = None,
    now: datetime,
) -> Proposal | None:
    """The entry's free-text "proposed action" as a proposal, once: for its phenomenon when
    it is linked to one, else for the entry itself when it was escalated."""
    text = (entry.action or "").strip()
    if not text:
        return None
    if phenomenon_id is None and entry.escalation not in ESCALATED_CODES:
        return None
    already = await session.scalar(
        select(Proposal.id).where(
            or_(
                Proposal.observation_id == entry.id,
                and_(Proposal.phenomenon_id == phenomenon_id, Proposal.text == text)
                if phenomenon_id is not None
                else Proposal.id.is_(None),
            )
        )
    )
    if already is not None:
        return None
    return await create_proposal(
        session,
        text=text,
        phenomenon_id=phenomenon_id,
        observation_id=None if phenomenon_id is not None else entry.id,
        proposer_person_id=entry.person_id,
        owner_person_id=None,
        actor=audit.person_actor(entry.person_id),
        now=now,
    )


async def get_proposal(session: AsyncSession, proposal_id: int) -> Proposal | None:
    if not 0 < proposal_id < 2**31:
        return None
    return await session.get(Proposal, proposal_id)


async def move_proposal(
    session: AsyncSession,
    proposal_id: int,
    move: rules.Move,
    *,
    bodies: Sequence[str],
    actor_person_id: int | None,
    actor: str,
    now: datetime,
) -> str | None:
    """Move a proposal one step. Returns an error key (``flows.knowledge.check_move``, or
    ``knowledge.error.no_proposal``) or None when the step was recorded."""
    row = await get_proposal(session, proposal_id)
    if row is None:
        return "knowledge.error.no_proposal"
    refused = rules.check_move(row.status, move, bodies)
    if refused is not None:
        return refused
    note = (move.note or "").strip() or None
    row.status = move.target
    row.updated_at = now
    if move.target == rules.PRESENTED:
        row.body, row.presented_on = move.body, move.on
    if move.target == rules.DECIDED:
        row.decision = note
    session.add(
        ProposalEvent(
            proposal_id=row.id,
            status=move.target,
            body=move.body,
            on_date=move.on,
            note=note,
            actor_person_id=actor_person_id,
            actor=actor,
            created_at=now,
        )
    )
    if row.phenomenon_id is not None:
        phenomenon = await get_phenomenon(session, row.phenomenon_id)
        if phenomenon is not None:
            phenomenon.moved_at = now
    await session.flush()
    await audit.record(session, actor, PROPOSAL_MOVE, f"proposal #{row.id} {move.target}", 1, now)
    await _queue(session, _people_of_proposal(row), f"proposal:{row.id}", move.target, now)
    return None


async def set_owner(
    session: AsyncSession, proposal_id: int, owner_person_id: int, *, actor: str, now: datetime
) -> bool:
    """Make ``owner_person_id`` the proposal's owner (audited); False when it already is
    or the proposal does not exist."""
    row = await get_proposal(session, proposal_id)
    if row is None or row.owner_person_id == owner_person_id:
        return False
    row.owner_person_id = owner_person_id
    row.updated_at = now
    await audit.record(session, actor, PROPOSAL_OWNER, f"proposal #{row.id}", 1, now)
    return True


CARD_BATCH = 20


async def unposted_cards(session: AsyncSession, limit: int = CARD_BATCH) -> Sequence[Proposal]:
    """Proposals whose card has not gone to a leadership channel yet, oldest first."""
    query = (
        select(Proposal).where(Proposal.card_posted_at.is_(None)).order_by(Proposal.id).limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def claim_card(session: AsyncSession, proposal_id: int, now: datetime) -> bool:
    """Claim the posting of a proposal's card: True for exactly one caller (two bot
    processes never post the same card twice)."""
    result = await session.execute(
        Proposal.__table__.update()
        .where(Proposal.id == proposal_id, Proposal.card_posted_at.is_(None))
        .values(card_posted_at=now)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def release_card(session: AsyncSession, proposal_id: int) -> None:
    """A card the platform did not take: posted again by the next ``post_cards``."""
    await session.execute(
        Proposal.__table__.update().where(Proposal.id == proposal_id).values(card_posted_at=None)
    )


async def proposal_events(session: AsyncSession, proposal_id: int) -> Sequence[ProposalEvent]:
    return (
        (
            await session.execute(
                select(ProposalEvent)
                .where(ProposalEvent.proposal_id == proposal_id)
                .order_by(ProposalEvent.created_at, ProposalEvent.id)
            )
        )
        .scalars()
        .all()
    )


async def step_note(session: AsyncSession, proposal_id: int, status: str) -> str | None:
    """The note of the proposal's (latest) step to ``status``, if it has one."""
    note: str | None = await session.scalar(
        select(ProposalEvent.note)
        .where(ProposalEvent.proposal_id == proposal_id, ProposalEvent.status == status)
        .order_by(ProposalEvent.id.desc())
        .limit(1)
    )
    return note


async def list_proposals(
    session: AsyncSession,
    *,
    region: str | None = None,
    phenomenon_id: int | None = None,
    moved_since: datetime | None = None,
    limit: int = 200,
) -> Sequence[Proposal]:
    query = select(Proposal)
    if region is not None:
        query = query.where(Proposal.region == region)
    if phenomenon_id is not None:
        query = query.where(Proposal.phenomenon_id == phenomenon_id)
    if moved_since is not None:
        query = query.where(Proposal.updated_at >= moved_since)
    query = query.order_by(Proposal.updated_at.desc(), Proposal.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def proposals_of_observation(
    session: AsyncSession, observation_id: int
) -> Sequence[Proposal]:
    phenomenon = await phenomenon_of(session, observation_id)
    conditions = [Proposal.observation_id == observation_id]
    if phenomenon is not None:
        conditions.append(Proposal.phenomenon_id == phenomenon.id)
    return (
        (await session.execute(select(Proposal).where(or_(*conditions)).order_by(Proposal.id)))
        .scalars()
        .all()
    )


# --- where an observation stands ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathStep:
    step: str
    at: datetime | date | None
    detail: str | None = None  # a body id, a decision, a status
    note: str | None = None  # the leader's note on a proposal step


@dataclass(frozen=True, slots=True)
class PathView:
    observation_id: int
    position: str
    steps: list[PathStep] = field(default_factory=list)
    phenomenon: PhenomenonView | None = None
    confirmations: int = 0
    decision: str | None = None


async def in_digest(session: AsyncSession, entry: Observation) -> datetime | None:
    """When the team's weekly digest that covered the entry's week went out, if it did."""
    week = week_of(entry.observed_at.astimezone(HELSINKI).date())
    return await session.scalar(
        select(func.min(Delivery.sent_at)).where(
            Delivery.kind == "weekly",
            Delivery.scope == entry.team_id,
            Delivery.period == week,
            Delivery.status == "sent",
        )
    )


async def path_of(session: AsyncSession, entry: Observation) -> PathView:
    """Every step the observation has taken on the knowledge path, with its date."""
    steps = [PathStep(rules.RECORDED, entry.recorded_at)]
    digested = await in_digest(session, entry)
    if digested is not None:
        steps.append(PathStep(rules.IN_DIGEST, digested))
    view: PhenomenonView | None = None
    link_row = await session.get(PhenomenonLink, entry.id)
    if link_row is not None:
        view = await phenomenon_view(session, link_row.phenomenon_id)
        steps.append(
            PathStep(rules.IN_PHENOMENON, link_row.linked_at, view.title if view else None)
        )
    raised = entry.escalation in ESCALATED_CODES
    if raised:
        # When its notice reached leadership (an entry edited to escalated later than it
        # was recorded), else when it was recorded.
        noticed = await session.scalar(
            select(func.min(Notification.created_at)).where(Notification.observation_id == entry.id)
        )
        steps.append(PathStep(rules.RAISED, noticed or entry.recorded_at, entry.escalation))
    decision: str | None = None
    statuses: list[str] = []
    for proposal in await proposals_of_observation(session, entry.id):
        statuses.append(proposal.status)
        for event in await proposal_events(session, proposal.id):
            if event.status == rules.PRESENTED:
                steps.append(
                    PathStep(
                        rules.PATH_PRESENTED,
                        event.on_date or event.created_at,
                        event.body,
                        event.note,
                    )
                )
            elif event.status == rules.DECIDED:
                steps.append(PathStep(rules.PATH_DECIDED, event.created_at, event.note))
                decision = event.note
            elif event.status in rules.PROPOSAL_CLOSED:
                steps.append(PathStep(rules.CLOSED, event.created_at, event.status, event.note))
    facts = rules.PathFacts(
        in_digest=digested is not None,
        phenomenon=link_row is not None,
        raised=raised,
        proposal_status=rules.furthest_status(statuses),
    )
    return PathView(
        observation_id=entry.id,
        position=rules.position(facts),
        steps=steps,
        phenomenon=view,
        confirmations=await confirmations_of_observation(session, entry.id),
        decision=decision,
    )


async def positions(session: AsyncSession, entries: Sequence[Observation]) -> dict[int, str]:
    """The path position of each entry (``/omat``), a few queries for the whole page."""
    return {entry.id: (await path_of(session, entry)).position for entry in entries}


# --- path notices -------------------------------------------------------------------------


def _people_of_observation(observation_id: int):  # type: ignore[no-untyped-def]
    return union(
        select(Observation.person_id).where(Observation.id == observation_id),
        select(Confirmation.person_id).where(Confirmation.observation_id == observation_id),
    )


def _people_of_phenomenon(phenomenon_id: int):  # type: ignore[no-untyped-def]
    linked = select(PhenomenonLink.observation_id).where(
        PhenomenonLink.phenomenon_id == phenomenon_id
    )
    return union(
        select(Observation.person_id).where(Observation.id.in_(linked)),
        select(Confirmation.person_id).where(
            or_(
                Confirmation.phenomenon_id == phenomenon_id,
                Confirmation.observation_id.in_(linked),
            )
        ),
    )


def _people_of_proposal(row: Proposal):  # type: ignore[no-untyped-def]
    if row.phenomenon_id is not None:
        return _people_of_phenomenon(row.phenomenon_id)
    assert row.observation_id is not None
    return _people_of_observation(row.observation_id)


async def queue_path_notices(
    session: AsyncSession, *, phenomenon_id: int, step: str, now: datetime
) -> None:
    await _queue(
        session, _people_of_phenomenon(phenomenon_id), f"phenomenon:{phenomenon_id}", step, now
    )


async def _queue(session: AsyncSession, people, subject: str, step: str, now: datetime) -> None:  # type: ignore[no-untyped-def]
    person_ids = {row[0] for row in (await session.execute(people)).all()}
    if not person_ids:
        return
    values = [
        {"person_id": person_id, "subject": subject, "step": step, "created_at": now}
        for person_id in sorted(person_ids)
    ]
    dialect = session.bind.dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(PathNotice).values(values).on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class PendingPath:
    person_id: int
    subject: str
    step: str
    created_at: datetime


async def due_path_notices(
    session: AsyncSession, *, now: datetime, every: timedelta, zone: tzinfo = HELSINKI
) -> dict[int, list[PendingPath]]:
    """Unsent path notices per person, for the people not told anything within ``every``
    (at most one message a day per worker, by default), counted in calendar days of
    ``zone`` (``flows.knowledge.news_told_since``: a daily run reaches them daily)."""
    since = rules.news_told_since(now, every, zone)
    told_recently = (
        select(PathNotice.person_id)
        .where(PathNotice.sent_at.is_not(None), PathNotice.sent_at >= since)
        .distinct()
    )
    rows = (
        await session.execute(
            select(PathNotice)
            .where(PathNotice.sent_at.is_(None), PathNotice.person_id.not_in(told_recently))
            .order_by(PathNotice.person_id, PathNotice.created_at, PathNotice.id)
        )
    ).scalars()
    out: dict[int, list[PendingPath]] = {}
    for row in rows:
        out.setdefault(row.person_id, []).append(
            PendingPath(row.person_id, row.subject, row.step, row.created_at)
        )
    return out


async def mark_path_notices_sent(
    session: AsyncSession, person_id: int, upto: datetime, now: datetime
) -> int:
    result = await session.execute(
        PathNotice.__table__.update()
        .where(
            and_(
                PathNotice.person_id == person_id,
                PathNotice.sent_at.is_(None),
                PathNotice.created_at <= upto,
            )
        )
        .values(sent_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Contact:
    transport: str
    chat_id: str
    language: str


async def contact_of(session: AsyncSession, person_id: int) -> Contact | None:
    """Where a person is told things privately (their first identity), unless revoked."""
    person = await session.get(Person, person_id)
    if person is None or person.revoked_at is not None:
        return None
    identity = (
        (
            await session.execute(
                select(Identity).where(Identity.person_id == person_id).order_by(Identity.id)
            )
        )
        .scalars()
        .first()
    )
    if identity is None:
        return None
    return Contact(identity.transport, identity.chat_id, person.language)


async def confirmed_by(session: AsyncSession, person_id: int, observation_id: int) -> bool:
    """Whether the person confirmed the observation or the phenomenon it belongs to."""
    phenomenon = await phenomenon_of(session, observation_id)
    conditions = [Confirmation.observation_id == observation_id]
    if phenomenon is not None:
        conditions.append(Confirmation.phenomenon_id == phenomenon.id)
    found = await session.scalar(
        select(Confirmation.id)
        .where(Confirmation.person_id == person_id, or_(*conditions))
        .limit(1)
    )
    return found is not None


# --- the weekly digest's section ----------------------------------------------------------


async def weekly_section(
    session: AsyncSession, team_id: str, region: str, start: datetime, end: datetime
) -> tuple[list[PhenomenonView], list[Proposal], list[PhenomenonView]]:
    """For a team's weekly digest: its open phenomena (own and region-wide), the proposals
    of those phenomena or of the team's entries that moved in [start, end), and the
    phenomena the team's entries were linked to in that week."""
    open_views = await list_phenomena(
        session, region=region, team_id=team_id, status=rules.PHENOMENON_OPEN, limit=10
    )
    # From the links and proposals (few) to their observations by primary key, never
    # "IN (every entry the team ever made)": that grows with the table (47.6 ms at 10M
    # rows against 5.7 ms at 1M in bench.digests_scale, with no link at all).
    # (EXISTS keeps the links the outer loop: as a join SQLite walks the team's entries.)
    by_team = (
        select(Observation.id)
        .where(Observation.id == PhenomenonLink.observation_id, Observation.team_id == team_id)
        .exists()
    )
    team_phenomena = select(PhenomenonLink.phenomenon_id).where(by_team)
    moved_ids = select(ProposalEvent.proposal_id).where(
        ProposalEvent.created_at >= start, ProposalEvent.created_at < end
    )
    own_entry = aliased(Observation)
    proposals = (
        (
            await session.execute(
                select(Proposal)
                .outerjoin(own_entry, own_entry.id == Proposal.observation_id)
                .where(
                    Proposal.id.in_(moved_ids),
                    or_(
                        Proposal.team_id == team_id,
                        Proposal.phenomenon_id.in_(team_phenomena),
                        own_entry.team_id == team_id,
                    ),
                )
                .order_by(Proposal.updated_at.desc())
                .limit(10)
            )
        )
        .scalars()
        .all()
    )
    linked_ids = (
        (
            await session.execute(
                select(PhenomenonLink.phenomenon_id)
                .where(
                    by_team,
                    PhenomenonLink.linked_at >= start,
                    PhenomenonLink.linked_at < end,
                )
                .distinct()
            )
        )
        .scalars()
        .all()
    )
    linked = [view for pid in linked_ids if (view := await phenomenon_view(session, pid))]
    return open_views, list(proposals), linked


async def moved_proposals(
    session: AsyncSession, region: str | None, start: datetime, end: datetime, limit: int = 50
) -> list[Proposal]:
    """The proposals of ``region`` (None: every region) that moved in [start, end), the most
    recently moved first: for the monthly summary."""
    moved_ids = select(ProposalEvent.proposal_id).where(
        ProposalEvent.created_at >= start, ProposalEvent.created_at < end
    )
    query = select(Proposal).where(Proposal.id.in_(moved_ids))
    if region is not None:
        query = query.where(Proposal.region == region)
    rows = await session.execute(
        query.order_by(Proposal.updated_at.desc(), Proposal.id.desc()).limit(limit)
    )
    return list(rows.scalars().all())
