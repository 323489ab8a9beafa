"""Repositories for escalations: statuses (the audit trail), channel notices and relays.

Like ``storage.repo`` every function takes the caller's session. The writes
that two processes (or two leaders pressing at once) could race on are single
conditional ``UPDATE`` statements, so exactly one of them wins: the first
acknowledgement, the claim of an unsent notice, a due reminder, the closing of
an awaited text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.statuses import OPEN
from storage import audit
from storage.models import EscalationEvent, Notification, Observation, Relay
from storage.repo import is_row_id

# --- statuses -----------------------------------------------------------------------


async def add_event(
    session: AsyncSession,
    observation_id: int,
    status: str,
    now: datetime,
    actor_person_id: int | None = None,
    text: str | None = None,
) -> EscalationEvent:
    event = EscalationEvent(
        observation_id=observation_id,
        status=status,
        text=text,
        actor_person_id=actor_person_id,
        created_at=now,
    )
    session.add(event)
    # Every status change is also on the data audit trail (``havainto audit``).
    await audit.record(
        session,
        audit.person_actor(actor_person_id),
        audit.ESCALATION_STATUS,
        f"observation={observation_id} status={status}",
        1,
        now,
    )
    await session.flush()
    return event


async def events_for(session: AsyncSession, observation_id: int) -> Sequence[EscalationEvent]:
    """Every status change of the observation, oldest first."""
    result = await session.execute(
        select(EscalationEvent)
        .where(EscalationEvent.observation_id == observation_id)
        .order_by(EscalationEvent.created_at, EscalationEvent.id)
    )
    return result.scalars().all()


async def latest_status(session: AsyncSession, observation_id: int) -> tuple[str, str | None]:
    """The newest status and its text; ``open`` while nobody has set one."""
    row = (
        await session.execute(
            select(EscalationEvent.status, EscalationEvent.text)
            .where(EscalationEvent.observation_id == observation_id)
            .order_by(EscalationEvent.created_at.desc(), EscalationEvent.id.desc())
            .limit(1)
        )
    ).first()
    return (row.status, row.text) if row is not None else (OPEN, None)


async def current_status(session: AsyncSession, observation_id: int) -> str:
    """The newest status; ``open`` while nobody has set one."""
    status = (
        await session.execute(
            select(EscalationEvent.status)
            .where(EscalationEvent.observation_id == observation_id)
            .order_by(EscalationEvent.created_at.desc(), EscalationEvent.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return status or OPEN


# --- notices in leadership channels ------------------------------------------------------


async def add_notification(
    session: AsyncSession,
    observation_id: int,
    channel: str,
    kind: str,
    transport: str,
    chat_id: str,
    now: datetime,
    claimed: bool = True,
) -> Notification:
    """A notice about to be posted; it is claimed by the caller (``claimed_at = now``).

    ``claimed=False``: the caller cannot post on ``transport``; the escalation check of
    an instance that can claims it (``claim_unsent_notifications``) at once."""
    row = Notification(
        observation_id=observation_id,
        channel=channel,
        kind=kind,
        transport=transport,
        chat_id=chat_id,
        message_ref=None,
        created_at=now,
        claimed_at=now if claimed else None,
        sent_at=None,
        acknowledged_at=None,
        acknowledged_by=None,
        last_reminded_at=None,
        reminders=0,
    )
    session.add(row)
    await session.flush()
    return row


async def notifications_for(session: AsyncSession, observation_id: int) -> Sequence[Notification]:
    """The observation's notices, read afresh (the conditional updates bypass the session)."""
    result = await session.execute(
        select(Notification)
        .where(Notification.observation_id == observation_id)
        .order_by(Notification.id)
        .execution_options(populate_existing=True)
    )
    return result.scalars().all()


async def mark_notification_sent(
    session: AsyncSession, notification_id: int, message_ref: str | None, now: datetime
) -> int | None:
    """Record that the platform took the notice. Returns its observation's id when this is
    the first notice of that observation to get through (the reporter is told then)."""
    row = await session.get(Notification, notification_id)
    first = False
    if row is not None and row.sent_at is None:
        others = await session.execute(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.observation_id == row.observation_id,
                Notification.sent_at.is_not(None),
            )
        )
        first = others.scalar_one() == 0
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(sent_at=func.coalesce(Notification.sent_at, now), message_ref=message_ref)
        .execution_options(synchronize_session=False)
    )
    return row.observation_id if row is not None and first else None


async def release_notification(session: AsyncSession, notification_id: int) -> None:
    """A post that failed: anyone may claim the notice again at once."""
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.sent_at.is_(None))
        .values(claimed_at=None)
        .execution_options(synchronize_session=False)
    )


async def acknowledge(
    session: AsyncSession, observation_id: int, person_id: int, now: datetime
) -> bool:
    """Mark every notice of the observation acknowledged; False if someone was first."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.observation_id == observation_id,
            Notification.acknowledged_at.is_(None),
        )
        .values(acknowledged_at=now, acknowledged_by=person_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def claim_unsent_notifications(
    session: AsyncSession,
    now: datetime,
    lease: timedelta,
    transports: Collection[str] | None = None,
) -> list[Notification]:
    """Notices whose post never got through (a crash or a platform error, or posted by an
    instance without that transport): claim them again, on ``transports`` only if given."""
    candidates = (
        (
            await session.execute(
                select(Notification.id)
                .join(Observation, Observation.id == Notification.observation_id)
                .where(
                    Notification.sent_at.is_(None),
                    Notification.acknowledged_at.is_(None),
                    Observation.withdrawn_at.is_(None),
                    or_(Notification.claimed_at.is_(None), Notification.claimed_at < now - lease),
                    *_on(transports),
                )
                .order_by(Notification.id)
            )
        )
        .scalars()
        .all()
    )
    claimed: list[Notification] = []
    for notification_id in candidates:
        result = await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.sent_at.is_(None),
                or_(Notification.claimed_at.is_(None), Notification.claimed_at < now - lease),
            )
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            row = await session.get(Notification, notification_id, populate_existing=True)
            if row is not None:
                claimed.append(row)
    return claimed


async def reminder_candidates(
    session: AsyncSession, kinds: Collection[str], transports: Collection[str] | None = None
) -> list[int]:
    """The observations with a posted, unacknowledged notice of ``kinds`` (on ``transports``
    only if given) that is not withdrawn: ``flows.escalation`` decides which are due."""
    return await _posted_notices(session, kinds, transports, Notification.acknowledged_at.is_(None))


async def _posted_notices(
    session: AsyncSession,
    kinds: Collection[str],
    transports: Collection[str] | None,
    *where: ColumnElement[bool],
) -> list[int]:
    """The observations, not withdrawn, with a posted notice of ``kinds`` (on
    ``transports`` only if given) that also meets ``where``."""
    result = await session.execute(
        select(Notification.observation_id)
        .join(Observation, Observation.id == Notification.observation_id)
        .where(
            Notification.kind.in_(list(kinds)),
            Notification.sent_at.is_not(None),
            Observation.withdrawn_at.is_(None),
            *where,
            *_on(transports),
        )
        .distinct()
        .order_by(Notification.observation_id)
    )
    return list(result.scalars().all())


async def claim_reminder(
    session: AsyncSession, notification_id: int, seen_reminders: int, now: datetime
) -> bool:
    """Claim a reminder decided on a notice whose ``reminders`` count was ``seen_reminders``:
    one conditional update, so of two processes that both saw it due only one reminds."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.reminders == seen_reminders,
            Notification.acknowledged_at.is_(None),
        )
        .values(last_reminded_at=now, reminders=Notification.reminders + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def measures_candidates(
    session: AsyncSession,
    kinds: Collection[str],
    posted_before: datetime,
    transports: Collection[str] | None = None,
) -> list[int]:
    """The observations with a notice of ``kinds`` posted before ``posted_before`` (on
    ``transports`` only if given), not withdrawn, whose leaders were not yet reminded that
    no measure was recorded: ``flows.escalation`` decides which are due."""
    return await _posted_notices(
        session,
        kinds,
        transports,
        Notification.sent_at <= posted_before,
        Notification.measures_reminded_at.is_(None),
    )


async def claim_measures_reminder(
    session: AsyncSession, observation_id: int, now: datetime
) -> bool:
    """Claim the one "no measure recorded" reminder of an entry's notice: one conditional
    update of all its posts, so of two processes only one reminds."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.observation_id == observation_id,
            Notification.measures_reminded_at.is_(None),
        )
        .values(measures_reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _on(transports: Collection[str] | None) -> list[ColumnElement[bool]]:
    return [] if transports is None else [Notification.transport.in_(list(transports))]


# --- awaited texts ---------------------------------------------------------------------


async def open_relay(
    session: AsyncSession,
    *,
    observation_id: int,
    kind: str,
    person_id: int,
    transport: str,
    chat_id: str,
    now: datetime,
    status: str | None = None,
    parent_id: int | None = None,
) -> Relay:
    relay = Relay(
        observation_id=observation_id,
        kind=kind,
        status=status,
        person_id=person_id,
        transport=transport,
        chat_id=chat_id,
        prompt_ref=None,
        parent_id=parent_id,
        created_at=now,
        answered_at=None,
    )
    session.add(relay)
    await session.flush()
    return relay


async def set_prompt_ref(session: AsyncSession, relay_id: int, ref: str | None) -> None:
    await session.execute(
        update(Relay)
        .where(Relay.id == relay_id)
        .values(prompt_ref=ref)
        .execution_options(synchronize_session=False)
    )


async def get_relay(session: AsyncSession, relay_id: int) -> Relay | None:
    if not is_row_id(relay_id):  # a number from a forged button
        return None
    return await session.get(Relay, relay_id)


async def relays_for(session: AsyncSession, observation_id: int) -> Sequence[Relay]:
    """The observation's relays a conversation still needs: every text still awaited
    (expired ones too: ``flows.escalation`` decides) and every question relayed to the
    reporter (their answers go where it was asked). Read afresh, like the notices."""
    result = await session.execute(
        select(Relay)
        .where(
            Relay.observation_id == observation_id,
            or_(Relay.answered_at.is_(None), Relay.kind == "question"),
        )
        .order_by(Relay.id)
        .execution_options(populate_existing=True)
    )
    return result.scalars().all()


async def find_awaited_reply(
    session: AsyncSession,
    transport: str,
    chat_id: str,
    person_id: int,
    reply_to: str | None,
    since: datetime,
    kinds: Sequence[str],
) -> Relay | None:
    """The open relay a text in ``chat_id`` answers.

    With ``reply_to`` (the platform tells which message was replied to) only the
    relay whose prompt is that message matches, whoever the prompt was for. Without
    it, the newest open relay of this person in this chat whose prompt could not be
    tracked (the transport gives no message ids) matches.
    """
    query = select(Relay).where(
        Relay.transport == transport,
        Relay.chat_id == chat_id,
        Relay.kind.in_(kinds),
        Relay.answered_at.is_(None),
        Relay.created_at >= since,
    )
    if reply_to is not None:
        query = query.where(Relay.prompt_ref == reply_to)
    else:
        query = query.where(Relay.person_id == person_id, Relay.prompt_ref.is_(None))
    result = await session.execute(query.order_by(Relay.created_at.desc(), Relay.id.desc()))
    return result.scalars().first()


async def close_relay(session: AsyncSession, relay_id: int, now: datetime) -> bool:
    """Mark the awaited text received; False if it was received already."""
    result = await session.execute(
        update(Relay)
        .where(Relay.id == relay_id, Relay.answered_at.is_(None))
        .values(answered_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def pending_answer(session: AsyncSession, person_id: int, since: datetime) -> Relay | None:
    """The reporter's open answer, if they pressed Answer since ``since``: their next text."""
    result = await session.execute(_PENDING_ANSWER, {"person": person_id, "since": since})
    return result.scalars().first()


# Read for every private text: built once (see storage.repo's statements of the capture path).
_PENDING_ANSWER = (
    select(Relay)
    .where(
        Relay.kind == "answer",
        Relay.person_id == bindparam("person"),
        Relay.answered_at.is_(None),
        Relay.created_at >= bindparam("since"),
    )
    .order_by(Relay.created_at.desc(), Relay.id.desc())
)
