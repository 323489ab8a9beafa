"""Updates whose answer a process committed and never sent: nothing lost when it dies.

An update from a platform is handled in one transaction that also records its id
(``processed_events``), so a redelivered update has one effect only. Its replies are
sent after the commit. A process that dies between the two (SIGKILL, a lost machine)
leaves an update that is recorded as handled and a worker who never got the answer:
the platform sends the update again, the instance that gets it recognises the id and,
rightly, does nothing -- and the answer was lost (``bench/RESULTS-earlier.md`` section 8).

So a private chat's update that has an answer is noted in the same transaction
(``keep``: one ``INSERT`` into ``outbox``, migration 0020): who is owed an answer, where,
and the entry it saved, if any -- never the text of the answer, which may quote what the
worker typed (a cancelled draft must leave no trace). When the answer has been sent the
process forgets the note (``forget``, a batch now and then, not a transaction per
update). A note still there ``GRACE`` after its commit belongs to a process that did not
get to send: any instance running the platform takes it (``take_due``: claimed for
``LEASE``, skipping rows another instance holds), answers from what the database holds
now (``bot.service.Havainto.resend_lost``: the saved entry's confirmation, or the question
the worker's draft is on, or a line saying the answer got lost) and forgets it. A process
that dies after sending and before forgetting makes a worker get that answer twice; a
second answer is a nuisance, a missing one a worker left waiting.

Group chats are not noted: a notice's buttons and posts have their own re-posting
(``bot.escalation``), and there is no one waiting for a flow's next question there.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.events import Alert, Incoming, Outbound
from storage.models import OutboxEntry
from storage.repo import InsertIgnoring

#: How long after its commit an answer not yet sent is taken to be lost.
GRACE = timedelta(seconds=30)
#: How long an instance that took due notes holds them while it answers.
LEASE = timedelta(minutes=2)
#: The most due notes one sweep takes.
BATCH = 200


@dataclass(frozen=True)
class Due:
    """An update whose answer was committed and never sent."""

    transport: str
    event_id: str
    user_id: str
    chat_id: str
    saved_id: int | None


def saved_entry(outbounds: Sequence[Outbound]) -> int | None:
    """The entry whose "saved" confirmation is among the replies (``meta["track"]``)."""
    for out in outbounds:
        kind, _, number = out.meta.get("track", "").partition(":")
        if kind == "saved" and number.isdecimal():
            return int(number)
    return None


def owes_answer(incoming: Incoming, outbounds: Sequence[Outbound]) -> bool:
    """Whether a private chat's update has an answer worth sending late (a pop-up answer
    to a pressed button expires with the press)."""
    return incoming.is_private and any(
        out.chat_id == incoming.chat_id and not isinstance(out.reply, Alert) for out in outbounds
    )


async def keep(
    session: AsyncSession,
    incoming: Incoming,
    outbounds: Sequence[Outbound],
    now: datetime,
) -> bool:
    """Note, in the transaction that handles it, that ``incoming`` is owed its answer;
    False when it is not (nothing written)."""
    if incoming.event_id is None or not owes_answer(incoming, outbounds):
        return False
    await session.execute(
        _KEEP.on(session),
        {
            "transport": incoming.transport,
            "event_id": incoming.event_id,
            "user_id": incoming.user_id,
            "chat_id": incoming.chat_id,
            "saved_id": saved_entry(outbounds),
            "due_at": now + GRACE,
        },
    )
    return True


# An update handled twice (one whose handler records no id) keeps its first note. Into the
# table, not the ORM entity: an ORM insert takes the bulk-persistence path, about a tenth
# of the service's CPU per update for one row (bench/RESULTS.md).
_KEEP = InsertIgnoring(OutboxEntry.__table__)


async def forget(session: AsyncSession, keys: Collection[tuple[str, str]]) -> None:
    """Drop the notes of these updates (transport, event id): they were answered."""
    keys = list(keys)
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        await session.execute(
            delete(OutboxEntry).where(
                tuple_(OutboxEntry.transport, OutboxEntry.event_id).in_(chunk)
            )
        )


async def take_due(session: AsyncSession, transports: Collection[str], now: datetime) -> list[Due]:
    """Claim the due notes on ``transports`` for ``LEASE`` (rows another instance holds
    locked are skipped on PostgreSQL); the caller answers them and ``forget``s them."""
    rows = (
        await session.execute(
            select(
                OutboxEntry.transport,
                OutboxEntry.event_id,
                OutboxEntry.user_id,
                OutboxEntry.chat_id,
                OutboxEntry.saved_id,
            )
            .where(OutboxEntry.due_at <= now, OutboxEntry.transport.in_(list(transports)))
            .order_by(OutboxEntry.due_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    taken = [(row.transport, row.event_id) for row in rows]
    await session.execute(
        update(OutboxEntry)
        .where(tuple_(OutboxEntry.transport, OutboxEntry.event_id).in_(taken))
        .values(due_at=now + LEASE)
    )
    return [Due(*row) for row in rows]
