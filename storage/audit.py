"""The audit trail: who did what to the data, when, and to how many rows.

Every export, report, revocation, restoration, retention run and escalation status change
writes one ``AuditEvent`` in the same transaction as the action itself, so an
action that rolls back leaves no trace and one that commits always does.
``what`` describes the action (filters, a period, an observation number), never
observation text, names or chat identities.

A read that streams data out over time (an export, a digest printed on the command
line) is on the trail before its first record leaves: ``begin`` commits a row with
``state=started``, and ``finish`` completes it (``state=completed`` and the row count)
or marks it ``state=interrupted`` with the rows handed out until then (a reader that
closed the pipe, an error, Ctrl-C). A row still ``started`` is one whose process died.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent

# The actions recorded; ``havainto audit`` lists them with these names.
EXPORT = "export"
REPORT = "report"
PERSON_REVOKE = "person.revoke"
PERSON_RESTORE = "person.restore"
INVITE_REVOKE = "invite.revoke"
IDENTITIES_SHOWN = "people.identities_shown"
RETENTION = "retention.run"
ESCALATION_STATUS = "escalation.status"
NUDGES = "reminders.nudge"
DIGEST_WEEKLY = "digest.weekly"
DIGEST_MONTHLY = "digest.monthly"

# The states of a streamed read (``begin`` / ``finish``), the last word of its ``what``.
STARTED = "started"
COMPLETED = "completed"
INTERRUPTED = "interrupted"


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    what: str,
    rows: int,
    now: datetime,
) -> AuditEvent:
    """Add one audit row to the caller's transaction.

    ``actor`` is an operator's user name for the command line, ``person:<id>``
    for someone acting in the chat, or ``scheduler`` for a scheduled job.
    """
    event = AuditEvent(at=now, actor=actor[:128], action=action, what=what[:1000], rows=rows)
    session.add(event)
    await session.flush()
    return event


async def begin(session: AsyncSession, actor: str, action: str, what: str, now: datetime) -> int:
    """The row of a streamed read, before anything is read out; returns its id.

    Commit it (its own transaction) before the first record leaves."""
    event = await record(session, actor, action, f"{what} state={STARTED}", 0, now)
    return event.id


async def finish(session: AsyncSession, event_id: int, what: str, rows: int, state: str) -> None:
    """Complete (``COMPLETED``) or mark ``INTERRUPTED`` the row ``begin`` wrote."""
    await session.execute(
        update(AuditEvent)
        .where(AuditEvent.id == event_id)
        .values(what=f"{what} state={state}"[:1000], rows=rows)
    )


def person_actor(person_id: int | None) -> str:
    """The actor name of a person acting in the chat."""
    return f"person:{person_id}" if person_id is not None else "system"


async def list_events(
    session: AsyncSession, since: datetime | None = None, limit: int | None = None
) -> Sequence[AuditEvent]:
    """Audit rows, oldest first, from ``since`` on."""
    query = select(AuditEvent).order_by(AuditEvent.at, AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if limit is not None:
        query = query.limit(limit)
    return (await session.execute(query)).scalars().all()
