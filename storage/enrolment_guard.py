"""The enrolment guard: an account that keeps sending wrong invite codes has to wait.

After ``MAX_FAILURES`` wrong codes (unknown, used, expired, revoked, or made for a
revoked person) within ``WINDOW`` from one account (transport and platform user
id), that account may not try again for ``LOCKOUT``: even a valid code is refused
until then. One row per wrong code in ``enrolment_failures``, so every bot instance
sharing the database counts the same tries. The code is never stored. Rows older
than ``KEEP`` are pruned whenever one is written (and by the retention job); a
successful enrolment deletes the account's rows.

Tries refused during a lockout are not recorded: the newest row is the one that
started the lockout, so it ends ``LOCKOUT`` after that row, and one more wrong
code while the older ones are still within the window starts a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import EnrolmentFailure

MAX_FAILURES = 5
WINDOW = timedelta(hours=1)
LOCKOUT = timedelta(minutes=15)
KEEP = timedelta(days=1)


async def locked_until(
    session: AsyncSession, transport: str, external_id: str, now: datetime
) -> datetime | None:
    """When the account's lockout ends, or None when it may try a code now."""
    recent = (
        (
            await session.execute(
                select(EnrolmentFailure.failed_at)
                .where(
                    EnrolmentFailure.transport == transport,
                    EnrolmentFailure.external_id == external_id,
                )
                .order_by(EnrolmentFailure.failed_at.desc())
                .limit(MAX_FAILURES)
            )
        )
        .scalars()
        .all()
    )
    if len(recent) < MAX_FAILURES or recent[0] - recent[-1] >= WINDOW:
        return None
    until = recent[0] + LOCKOUT
    return until if until > now else None


async def record_failure(
    session: AsyncSession, transport: str, external_id: str, now: datetime
) -> datetime | None:
    """Count one wrong code; returns when the lockout it started ends (None: no lockout)."""
    await prune(session, now - KEEP)
    session.add(EnrolmentFailure(transport=transport, external_id=external_id, failed_at=now))
    await session.flush()
    return await locked_until(session, transport, external_id, now)


async def clear(session: AsyncSession, transport: str, external_id: str) -> None:
    """Forget the account's wrong codes (it has just enrolled)."""
    await session.execute(
        delete(EnrolmentFailure)
        .where(EnrolmentFailure.transport == transport, EnrolmentFailure.external_id == external_id)
        .execution_options(synchronize_session=False)
    )


async def prune(session: AsyncSession, before: datetime) -> int:
    """Delete the wrong codes recorded before ``before``; returns how many."""
    result = await session.execute(
        delete(EnrolmentFailure)
        .where(EnrolmentFailure.failed_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
