"""Data care over time: erase what is no longer needed, nudge who has gone quiet.

Retention (``[retention]`` in the config): once an entry is older than
``free_text_months`` (counted from when it was recorded) its free text, client
quote and proposed action are erased and ``text_erased_at`` is set; every code
stays, so the entry still counts in comparisons over the years. Drafts left
untouched for ``draft_days`` are deleted, whatever they held, and wrong invite
codes counted by the enrolment lockout once a day old (``storage.enrolment_guard``;
the bot prunes them as it writes too, this catches the last ones). Each run writes
one audit row saying what it did, also when it did nothing.

Reminders (``[reminders]``): a worker or team lead who has logged nothing for
``quiet_days`` gets one nudge; a second only after they have logged again and
gone quiet again. ``people.nudged_at`` remembers it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, enrolment_guard
from storage import held as held_texts
from storage.models import Draft, EscalationEvent, Identity, KeptDraft, Observation, Person

NUDGED_ROLES = ("worker", "lead")


@dataclass(frozen=True)
class RetentionResult:
    texts_erased: int
    drafts_erased: int
    text_cutoff: datetime
    draft_cutoff: datetime
    answers_erased: int = 0
    failures_erased: int = 0
    held_erased: int = 0  # texts held at the identifier guard, never answered


def months_before(moment: datetime, months: int) -> datetime:
    """The same wall-clock moment ``months`` calendar months earlier (31 March - 1 = 28/29 Feb)."""
    earlier: datetime = moment - relativedelta(months=months)
    return earlier


async def erase_expired_text(session: AsyncSession, cutoff: datetime, now: datetime) -> int:
    """Erase description, quote and action of entries recorded before ``cutoff``."""
    result = await session.execute(
        update(Observation)
        .where(
            Observation.recorded_at < cutoff,
            Observation.text_erased_at.is_(None),
            or_(
                Observation.description.is_not(None),
                Observation.quote.is_not(None),
                Observation.action.is_not(None),
            ),
        )
        .values(description=None, quote=None, action=None, text_erased_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def erase_expired_answers(session: AsyncSession, cutoff: datetime) -> int:
    """Erase the texts of escalation events (leaders' answers and notes) of entries
    recorded before ``cutoff``: free text about the same case, kept no longer than the
    entry's own. The statuses (who changed what, when) stay."""
    result = await session.execute(
        update(EscalationEvent)
        .where(
            EscalationEvent.text.is_not(None),
            EscalationEvent.observation_id.in_(
                select(Observation.id).where(Observation.recorded_at < cutoff)
            ),
        )
        .values(text=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def erase_stale_drafts(session: AsyncSession, cutoff: datetime) -> int:
    """Delete drafts untouched since before ``cutoff``, open ones and those kept aside."""
    erased = 0
    for model in (Draft, KeptDraft):
        result = await session.execute(
            delete(model)
            .where(model.updated_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        erased += int(result.rowcount)  # type: ignore[attr-defined]
    return erased


async def run_retention(
    session: AsyncSession,
    now: datetime,
    free_text_months: int,
    draft_days: int,
    actor: str = "scheduler",
) -> RetentionResult:
    """One retention run in the caller's transaction, with its audit row."""
    text_cutoff = months_before(now, free_text_months)
    draft_cutoff = now - timedelta(days=draft_days)
    texts = await erase_expired_text(session, text_cutoff, now)
    answers = await erase_expired_answers(session, text_cutoff)
    drafts = await erase_stale_drafts(session, draft_cutoff)
    # A text waiting for "remove / keep?" is part of an unfinished entry: kept as long.
    held = await held_texts.forget_held_before(session, draft_cutoff)
    failures = await enrolment_guard.prune(session, now - enrolment_guard.KEEP)
    await audit.record(
        session,
        actor,
        audit.RETENTION,
        f"free_text_months={free_text_months} texts_erased={texts} "
        f"answers_erased={answers} draft_days={draft_days} drafts_erased={drafts} "
        f"held_texts_erased={held} enrolment_failures_erased={failures}",
        texts + answers + drafts + held + failures,
        now,
    )
    return RetentionResult(texts, drafts, text_cutoff, draft_cutoff, answers, failures, held)


# --- the nudge to quiet workers ----------------------------------------------------------


@dataclass(frozen=True)
class Nudge:
    """A quiet person to nudge, and where."""

    person_id: int
    language: str
    transport: str
    chat_id: str


async def due_nudges(
    session: AsyncSession, now: datetime, quiet_days: int, teams: Collection[str]
) -> list[Nudge]:
    """People of ``teams`` quiet for ``quiet_days`` and not nudged since they last logged."""
    if not teams:
        return []
    cutoff = now - timedelta(days=quiet_days)
    last_logged = (
        select(func.max(Observation.recorded_at))
        .where(Observation.person_id == Person.id)
        .correlate(Person)
        .scalar_subquery()
    )
    # The identity a person last enrolled (their current phone, usually).
    newest_identity = (
        select(func.max(Identity.id))
        .where(Identity.person_id == Person.id)
        .correlate(Person)
        .scalar_subquery()
    )
    query = (
        select(Person.id, Person.language, Identity.transport, Identity.chat_id)
        .join(Identity, Identity.id == newest_identity)
        .where(
            Person.revoked_at.is_(None),
            Person.role.in_(NUDGED_ROLES),
            Person.team_id.in_(list(teams)),
            Person.created_at <= cutoff,
            or_(last_logged.is_(None), last_logged <= cutoff),
            or_(Person.nudged_at.is_(None), Person.nudged_at < last_logged),
        )
        .order_by(Person.id)
    )
    rows = (await session.execute(query)).all()
    return [Nudge(pid, lang, transport, chat) for pid, lang, transport, chat in rows]


async def mark_nudged(
    session: AsyncSession, person_ids: Collection[int], now: datetime, quiet_days: int = 1
) -> set[int]:
    """Mark people nudged; returns those this call marked.

    Conditional on not having been nudged within ``quiet_days``: when two instances
    run the job at once, the second UPDATE waits for the first to commit, then
    matches nobody, so each person is nudged by one instance only.
    """
    if not person_ids:
        return set()
    recent = now - timedelta(days=quiet_days)
    result = await session.execute(
        update(Person)
        .where(Person.id.in_(list(person_ids)))
        .where(or_(Person.nudged_at.is_(None), Person.nudged_at < recent))
        .values(nudged_at=now)
        .returning(Person.id)
        .execution_options(synchronize_session=False)
    )
    return {row[0] for row in result}
