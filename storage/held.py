"""What waits for a person: texts held at the identifier guard, confirmations not delivered.

``held_texts``: a text with identifiers waits here until its writer chooses to
remove them, keep the text or drop it (``flows.textguard``); one per person and
chat, a newer one replaces it. ``pending_confirmations``: a "Saved #N" the
platform did not accept, told at the worker's next contact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import HeldText, Observation, PendingConfirmation
from storage.repo import is_row_id


async def hold_text(session: AsyncSession, **values: object) -> HeldText:
    """Hold a text (replacing an earlier one of the same person in the same chat)."""
    await session.execute(
        delete(HeldText).where(
            HeldText.person_id == values["person_id"],
            HeldText.transport == values["transport"],
            HeldText.chat_id == values["chat_id"],
        )
    )
    held = HeldText(**values)
    session.add(held)
    await session.flush()
    return held


async def take_held(session: AsyncSession, held_id: int, person_id: int) -> HeldText | None:
    """The person's held text ``held_id``, removed from the table; None when there is none."""
    if not is_row_id(held_id):
        return None
    held = await session.get(HeldText, held_id)
    if held is None or held.person_id != person_id:
        return None
    await session.delete(held)
    await session.flush()
    return held


async def drop_held(session: AsyncSession, person_id: int) -> None:
    """The person cancelled: their held texts go."""
    await session.execute(delete(HeldText).where(HeldText.person_id == person_id))


async def forget_held_before(session: AsyncSession, cutoff: datetime) -> int:
    """Erase texts held since before ``cutoff`` (never answered); returns how many."""
    result = await session.execute(delete(HeldText).where(HeldText.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def add_pending_confirmation(
    session: AsyncSession, observation_id: int, now: datetime
) -> None:
    observation = await session.get(Observation, observation_id)
    if observation is None or await session.get(PendingConfirmation, observation_id):
        return
    session.add(
        PendingConfirmation(
            observation_id=observation_id, person_id=observation.person_id, created_at=now
        )
    )
    await session.flush()


async def take_pending_confirmations(
    session: AsyncSession, person_id: int
) -> Sequence[Observation]:
    """The person's entries whose confirmation did not get through; the records go."""
    rows = (
        (
            await session.execute(
                select(Observation)
                .join(PendingConfirmation, PendingConfirmation.observation_id == Observation.id)
                .where(PendingConfirmation.person_id == person_id)
                .order_by(Observation.id)
            )
        )
        .scalars()
        .all()
    )
    if rows:
        await session.execute(
            delete(PendingConfirmation).where(PendingConfirmation.person_id == person_id)
        )
    return rows


async def saved_from_draft(
    session: AsyncSession, person_id: int, draft_key: str
) -> Observation | None:
    """The person's entry saved from the draft ``draft_key``, if any."""
    return (
        (
            await session.execute(
                select(Observation)
                .where(Observation.person_id == person_id, Observation.draft_key == draft_key)
                .order_by(Observation.id.desc())
                .limit(1)
            )
        )
        .scalars()
        .first()
    )
