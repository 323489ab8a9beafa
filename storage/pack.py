"""The facts of one notice for its escalation pack (``digests.pack``), and the audit row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from digests.pack import PackFacts, PackStep
from flows.statuses import OPEN
from flows.taxonomy import SHL48
from storage import audit
from storage.models import EscalationEvent, Notification, Observation, Team

PACK = "escalation.pack"


async def pack_facts(
    session: AsyncSession, observation_id: int, region_names: dict[str, str]
) -> PackFacts | None:
    """The notice's facts, or None when #``observation_id`` is no § 29 notice."""
    if not 0 < observation_id < 2**31:
        return None
    entry = await session.get(Observation, observation_id)
    if entry is None or entry.escalation != SHL48 or entry.withdrawn_at is not None:
        return None
    team = await session.get(Team, entry.team_id)
    notices = (
        (
            await session.execute(
                select(Notification).where(Notification.observation_id == observation_id)
            )
        )
        .scalars()
        .all()
    )
    events = (
        (
            await session.execute(
                select(EscalationEvent)
                .where(EscalationEvent.observation_id == observation_id)
                .order_by(EscalationEvent.created_at, EscalationEvent.id)
            )
        )
        .scalars()
        .all()
    )
    sent = [n.sent_at for n in notices if n.sent_at is not None]
    acknowledged = [n.acknowledged_at for n in notices if n.acknowledged_at is not None]
    return PackFacts(
        number=entry.id,
        team_name=team.name if team else entry.team_id,
        region_name=region_names.get(entry.region, entry.region),
        theme=entry.theme,
        signal=entry.signal,
        observed_at=entry.observed_at,
        recorded_at=entry.recorded_at,
        description=None if entry.text_erased_at else entry.description,
        action=None if entry.text_erased_at else entry.action,
        posted_at=min(sent) if sent else None,
        acknowledged_at=min(acknowledged) if acknowledged else None,
        reminders=max((n.reminders for n in notices), default=0),
        steps=[PackStep(e.created_at, e.status, e.text) for e in events],
        status=events[-1].status if events else OPEN,
    )


async def record_pack(
    session: AsyncSession, actor: str, observation_id: int, now: datetime
) -> None:
    await audit.record(session, actor, PACK, f"observation #{observation_id}", 1, now)
