"""The replies of handled updates, kept until they are sent: nothing lost when a process dies.

An update from a platform is handled in one transaction that also records its id
(``processed_events``), so a redelivered update has one effect only. Its replies are
sent after the commit. A process that dies between the two (SIGKILL, a lost machine)
leaves an update that is recorded as handled and a worker who never got the answer:
the platform sends the update again, the instance that gets it recognises the id and,
rightly, does nothing -- and the reply was lost (``bench/RESULTS.md`` section 8).

So the replies are kept with the update, in the same transaction (``keep``: one
``INSERT``, ``outbox``, migration 0020), with a moment they fall due (``GRACE`` later).
When they have been sent the process forgets them (``forget``, a batch now and then,
not a transaction per update). Rows still there when they fall due belong to a process
that did not get to send them: any instance running the platform takes them
(``take_due``: claimed for ``LEASE``, skipping rows another instance holds), sends them
once and forgets them, sent or not (the router has retried by then). A process that
dies after sending and before forgetting sends a reply twice; that is the trade made
here, since a reply twice is a nuisance and a reply never is a worker left waiting.

Only what can be sent again later is kept: messages, pictures and documents. A pop-up
answer to a pressed button (``Alert``) belongs to that press and expires with it; a
``Reprompt`` is kept as its message.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flows.events import Alert, Document, Image, Message, Outbound, Reprompt
from storage.models import OutboxEntry

#: How long after its commit a kept reply is taken to be lost.
GRACE = timedelta(seconds=30)
#: How long an instance that took due replies holds them while it sends.
LEASE = timedelta(minutes=2)
#: The most due rows one sweep takes.
BATCH = 200


class _Kept(BaseModel):
    """One reply as stored (bytes as base64)."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    transport: str
    chat_id: str
    meta: dict[str, str] = {}
    message: Message | None = None
    image: Image | None = None
    document: Document | None = None


_KEPT = TypeAdapter(list[_Kept])


def encode(outbounds: Sequence[Outbound]) -> str | None:
    """The replies worth sending again later, as JSON; None when there are none."""
    kept: list[_Kept] = []
    for out in outbounds:
        reply = out.reply
        if isinstance(reply, Alert):
            continue
        if isinstance(reply, Reprompt):
            reply = reply.message
        kept.append(
            _Kept(
                transport=out.transport,
                chat_id=out.chat_id,
                meta=out.meta,
                message=reply if isinstance(reply, Message) else None,
                image=reply if isinstance(reply, Image) else None,
                document=reply if isinstance(reply, Document) else None,
            )
        )
    if not kept:
        return None
    return _KEPT.dump_json(kept, exclude_none=True).decode()


def decode(stored: str) -> list[Outbound]:
    out: list[Outbound] = []
    for kept in _KEPT.validate_json(stored):
        reply = kept.message or kept.image or kept.document
        if reply is not None:
            out.append(Outbound(kept.transport, kept.chat_id, reply, dict(kept.meta)))
    return out


@dataclass(frozen=True)
class Due:
    """Kept replies whose process did not send them."""

    transport: str
    event_id: str
    outbounds: list[Outbound]


async def keep(
    session: AsyncSession,
    transport: str,
    event_id: str,
    outbounds: Sequence[Outbound],
    now: datetime,
) -> bool:
    """Keep an update's replies in the transaction that handles it; False when none is
    worth keeping (nothing was written)."""
    stored = encode(outbounds)
    if stored is None:
        return False
    dialect = session.get_bind().dialect.name
    await session.execute(
        _KEEP["postgresql" if dialect == "postgresql" else "sqlite"],
        {"transport": transport, "event_id": event_id, "due_at": now + GRACE, "replies": stored},
    )
    return True


# An update handled twice (one whose handler records no id) keeps its first replies.
_KEEP = {
    "postgresql": postgresql_insert(OutboxEntry).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(OutboxEntry).on_conflict_do_nothing(),
}


async def forget(session: AsyncSession, keys: Collection[tuple[str, str]]) -> None:
    """Drop the kept replies of these updates (transport, event id): they were sent."""
    keys = list(keys)
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        await session.execute(
            delete(OutboxEntry).where(
                tuple_(OutboxEntry.transport, OutboxEntry.event_id).in_(chunk)
            )
        )


async def take_due(session: AsyncSession, transports: Collection[str], now: datetime) -> list[Due]:
    """Claim the due replies on ``transports`` for ``LEASE`` (rows another instance holds
    locked are skipped on PostgreSQL); the caller sends them and ``forget``s them."""
    rows = (
        await session.execute(
            select(OutboxEntry.transport, OutboxEntry.event_id, OutboxEntry.replies)
            .where(OutboxEntry.due_at <= now, OutboxEntry.transport.in_(list(transports)))
            .order_by(OutboxEntry.due_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    taken = [(transport, event_id) for transport, event_id, _ in rows]
    await session.execute(
        update(OutboxEntry)
        .where(tuple_(OutboxEntry.transport, OutboxEntry.event_id).in_(taken))
        .values(due_at=now + LEASE)
    )
    return [Due(transport, event_id, decode(replies)) for transport, event_id, replies in rows]
