"""The delivery ledger: each digest goes to each channel exactly once.

A delivery is named by a unique key, ``kind:scope:period:transport:chat``
(e.g. ``weekly:hki-etsiva:2026-W47:telegram:-1001``). Posting follows a claim
protocol that is safe across processes sharing one database:

1. ``claim`` inserts the row with status ``claimed`` in its own committed
   transaction. The unique key lets one insert win; a second process (or a
   second run of the same job) gets an integrity error and does not post.
2. Only a row that ``failed`` and is due again, or a ``claimed`` row whose
   lease ran out (its process died mid-post), can be claimed once more, by an
   atomic ``UPDATE ... WHERE status = ...``: again exactly one claimer wins.
   Every claim increments ``attempts``, which serves as the fencing token:
   a process whose lease was taken over can no longer record progress.
3. After each message of the digest the claimer records ``parts_sent``, so a
   retry continues with the first part not yet accepted instead of repeating
   the ones already posted; ``mark_sent`` closes the row.

"Never twice in normal operation": a part is repeated only if a process dies
(or its lease runs out) between the platform accepting a message and the
ledger recording it, a window of one database write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Delivery


def delivery_key(kind: str, scope: str, period: str, transport: str, chat_id: str) -> str:
    return f"{kind}:{scope}:{period}:{transport}:{chat_id}"


@dataclass(frozen=True)
class Claim:
    """The right to post one delivery, held until ``mark_sent``/``mark_failed``."""

    key: str
    kind: str
    scope: str
    period: str
    transport: str
    chat_id: str
    attempts: int  # the fencing token: this claim's number
    parts_sent: int  # parts already accepted by the platform in earlier attempts
    claimed_at: datetime


def _claim_from(row: Delivery) -> Claim:
    assert row.claimed_at is not None
    return Claim(
        key=row.key,
        kind=row.kind,
        scope=row.scope,
        period=row.period,
        transport=row.transport,
        chat_id=row.chat_id,
        attempts=row.attempts,
        parts_sent=row.parts_sent,
        claimed_at=row.claimed_at,
    )


async def claim(
    session: AsyncSession,
    *,
    kind: str,
    scope: str,
    period: str,
    transport: str,
    chat_id: str,
    now: datetime,
    lease: timedelta,
) -> Claim | None:
    """Claim the delivery; None when it was sent, is being sent, or is not due for a retry.

    Commit the session right after a successful claim so other processes see it.
    """
    key = delivery_key(kind, scope, period, transport, chat_id)
    try:
        async with session.begin_nested():
            session.add(
                Delivery(
                    key=key,
                    kind=kind,
                    scope=scope,
                    period=period,
                    transport=transport,
                    chat_id=chat_id,
                    status="claimed",
                    attempts=1,
                    parts_sent=0,
                    last_error=None,
                    claimed_at=now,
                    sent_at=None,
                    next_attempt_at=None,
                )
            )
            await session.flush()
    except IntegrityError:
        return await reclaim(session, key, now, lease)
    return Claim(key, kind, scope, period, transport, chat_id, 1, 0, now)


async def reclaim(session: AsyncSession, key: str, now: datetime, lease: timedelta) -> Claim | None:
    """Take over a failed delivery that is due, or a claim whose lease ran out."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.key == key,
            or_(
                and_(Delivery.status == "failed", Delivery.next_attempt_at <= now),
                and_(Delivery.status == "claimed", Delivery.claimed_at < now - lease),
            ),
        )
        .values(
            status="claimed",
            claimed_at=now,
            attempts=Delivery.attempts + 1,
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = (
        await session.execute(
            select(Delivery).where(Delivery.key == key).execution_options(populate_existing=True)
        )
    ).scalar_one()
    return _claim_from(row)


async def record_parts(session: AsyncSession, held: Claim, parts_sent: int) -> bool:
    """Remember that ``parts_sent`` parts are accepted; False if the claim was taken over."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.key == held.key,
            Delivery.status == "claimed",
            Delivery.attempts == held.attempts,
        )
        .values(parts_sent=parts_sent)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mark_sent(session: AsyncSession, held: Claim, now: datetime) -> bool:
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.key == held.key,
            Delivery.status == "claimed",
            Delivery.attempts == held.attempts,
        )
        .values(status="sent", sent_at=now, last_error=None, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mark_failed(
    session: AsyncSession, held: Claim, error_kind: str, next_attempt_at: datetime
) -> bool:
    """Give the claim back: a later retry (at ``next_attempt_at``) continues the delivery."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.key == held.key,
            Delivery.status == "claimed",
            Delivery.attempts == held.attempts,
        )
        .values(status="failed", last_error=error_kind[:64], next_attempt_at=next_attempt_at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def due_retries(session: AsyncSession, now: datetime, lease: timedelta) -> Sequence[Delivery]:
    """Deliveries a retry job should pick up: failed and due, or claimed with a lapsed lease."""
    result = await session.execute(
        select(Delivery)
        .where(
            or_(
                and_(Delivery.status == "failed", Delivery.next_attempt_at <= now),
                and_(Delivery.status == "claimed", Delivery.claimed_at < now - lease),
            )
        )
        .order_by(Delivery.id)
    )
    return result.scalars().all()


async def get_delivery(session: AsyncSession, key: str) -> Delivery | None:
    return (await session.execute(select(Delivery).where(Delivery.key == key))).scalar_one_or_none()
