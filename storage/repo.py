"""Repositories: the queries and writes the bot needs, one function each.

Every function takes the caller's ``AsyncSession`` so a whole unit of work
(an incoming event, a scheduled job) is one transaction. Nothing here loads
relationships lazily: what is needed is selected explicitly.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    BotState,
    Draft,
    Identity,
    Invite,
    KeptDraft,
    Observation,
    PendingConfirmation,
    Person,
    ProcessedEvent,
    Team,
)

# Codes are read aloud and typed on phones: no 0/O, 1/l/I look-alikes.
_INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class Member:
    """A person as the bot needs them for one event: who, which team, which role."""

    person_id: int
    pseudonym: str
    team_id: str
    role: str
    language: str
    revoked: bool
    chat_id: str
    last_active_on: datetime | None = None
    default_area: str | None = None
    # Whether a "Saved #N" the platform did not take waits for this person
    # (``storage.held.take_pending_confirmations``); True when not looked up, so the
    # caller asks.
    confirmations_pending: bool = True


def _member(row: Any) -> Member | None:
    if row is None:
        return None
    person, chat_id = row
    return Member(
        person_id=person.id,
        pseudonym=person.pseudonym,
        team_id=person.team_id,
        role=person.role,
        language=person.language,
        revoked=person.revoked_at is not None,
        chat_id=chat_id,
        last_active_on=person.last_active_on,
        default_area=person.default_area,
    )


# --- teams ------------------------------------------------------------------------


async def sync_teams(session: AsyncSession, teams: Iterable[tuple[str, str, str, str]]) -> None:
    """Mirror the configured teams (id, name, region, language) into the database.

    One upsert: instances starting at the same moment on an empty database each insert
    the teams, and the later one updates them instead of failing on the primary key."""
    rows = [
        {"id": team_id, "name": name, "region": region, "language": language}
        for team_id, name, region, language in teams
    ]
    if not rows:
        return
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Team).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[Team.id],
        set_={name: statement.excluded[name] for name in ("name", "region", "language")},
    )
    await session.execute(statement)


# --- people and enrolment ------------------------------------------------------------


# Built once: every incoming event looks its sender up, and building the statement
# (not running it) was the largest part of that cost (bench/RESULTS-earlier.md).
# The statements every update runs select from the tables, not the ORM entities: rows
# either way, without the ORM's compile and result stages (bench/RESULTS.md, CPU per update).
_PEOPLE = Person.__table__.c
_IDENTITIES = Identity.__table__.c
_FIND_MEMBER = (
    select(
        _PEOPLE.id,
        _PEOPLE.pseudonym,
        _PEOPLE.team_id,
        _PEOPLE.role,
        _PEOPLE.language,
        _PEOPLE.revoked_at,
        _PEOPLE.last_active_on,
        _PEOPLE.default_area,
        _IDENTITIES.chat_id,
        # Almost always false: the turn then skips its own look-up of late confirmations,
        # one statement of every update (bench/RESULTS.md, CPU per update).
        exists()
        .where(PendingConfirmation.__table__.c.person_id == _PEOPLE.id)
        .label("confirmations_pending"),
    )
    .select_from(Person.__table__.join(Identity.__table__))
    .where(
        _IDENTITIES.transport == bindparam("transport"),
        _IDENTITIES.external_id == bindparam("external_id"),
    )
)


async def find_member(session: AsyncSession, transport: str, external_id: str) -> Member | None:
    row = (
        await session.execute(_FIND_MEMBER, {"transport": transport, "external_id": external_id})
    ).first()
    if row is None:
        return None
    return Member(
        person_id=row.id,
        pseudonym=row.pseudonym,
        team_id=row.team_id,
        role=row.role,
        language=row.language,
        revoked=row.revoked_at is not None,
        chat_id=row.chat_id,
        last_active_on=row.last_active_on,
        default_area=row.default_area,
        confirmations_pending=bool(row.confirmations_pending),
    )


async def find_member_by_person(
    session: AsyncSession, person_id: int, transport: str | None = None
) -> Member | None:
    """A person as a member, with their chat on ``transport`` (any transport when None)."""
    query = (
        select(Person, Identity.chat_id)
        .join(Identity, Identity.person_id == Person.id)
        .where(Person.id == person_id)
        .order_by(Identity.id)
    )
    if transport is not None:
        query = query.where(Identity.transport == transport)
    row = (await session.execute(query)).first()
    return _member(row)


async def first_chat(session: AsyncSession, person_id: int) -> tuple[str, str] | None:
    """(transport, chat id) of the person's first enrolled identity."""
    result = await session.execute(
        select(Identity.transport, Identity.chat_id)
        .where(Identity.person_id == person_id)
        .order_by(Identity.id)
        .limit(1)
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def create_invite(
    session: AsyncSession,
    team_id: str,
    role: str,
    now: datetime,
    valid_for: timedelta,
    person_id: int | None = None,
) -> Invite:
    """A new code; with ``person_id`` it adds an identity to that person, who must exist
    and not be revoked (``ValueError`` otherwise: restore them first)."""
    if person_id is not None:
        person = await session.get(Person, person_id) if is_row_id(person_id) else None
        if person is None:
            raise ValueError(f"no person {person_id}")
        if person.revoked_at is not None:
            raise ValueError(
                f"person {person_id} is revoked: restore them first (havainto people restore)"
            )
    code = "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(10))
    invite = Invite(
        code=code,
        team_id=team_id,
        role=role,
        person_id=person_id,
        created_at=now,
        expires_at=now + valid_for,
        used_at=None,
        revoked_at=None,
    )
    session.add(invite)
    await session.flush()
    return invite


class EnrolmentError(Exception):
    """The code cannot be used; ``reason`` says why: unknown, used, expired, already
    (the account is enrolled) or revoked (the account, or the person the code is for,
    has been revoked)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def redeem_invite(
    session: AsyncSession,
    code: str,
    transport: str,
    external_id: str,
    chat_id: str,
    language: str,
    now: datetime,
) -> Member:
    """Enrol an identity with a single-use code; returns the member it now belongs to.

    A refused code is left as it was (nothing is written before every check passed).
    A revoked identity stays revoked whatever code it sends: only an administrator
    restores it (``storage.admin.restore_person``), as the same person.
    """
    existing = await find_member(session, transport, external_id)
    if existing is not None:
        raise EnrolmentError("revoked" if existing.revoked else "already")
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    invite = await session.get(Invite, normalised, with_for_update=True)
    if invite is None or invite.revoked_at is not None:
        raise EnrolmentError("unknown")
    if invite.used_at is not None:
        raise EnrolmentError("used")
    if invite.expires_at <= now:
        raise EnrolmentError("expired")
    person: Person | None = None
    if invite.person_id is not None:
        person = await session.get(Person, invite.person_id)
        if person is None:
            raise EnrolmentError("unknown")
        if person.revoked_at is not None:
            raise EnrolmentError("revoked")
    # Claim the code: a concurrent second redemption updates no row and fails.
    claimed = await session.execute(
        update(Invite)
        .where(Invite.code == normalised, Invite.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise EnrolmentError("used")
    if person is None:
        person = Person(
            pseudonym=new_pseudonym(),
            team_id=invite.team_id,
            role=invite.role,
            language=language,
            created_at=now,
            revoked_at=None,
            last_active_on=None,
        )
        session.add(person)
        await session.flush()
    session.add(
        Identity(
            person_id=person.id,
            transport=transport,
            external_id=external_id,
            chat_id=chat_id,
            created_at=now,
        )
    )
    await session.flush()
    member = await find_member(session, transport, external_id)
    assert member is not None
    return member


async def move_with_invite(
    session: AsyncSession, code: str, member: Member, now: datetime
) -> Member:
    """An enrolled person redeems a code for another team or role: they move there.

    The code was made by an administrator for that team and role, so it is as good as
    for a newcomer (a demo user going to a real team, a worker changing teams). Their
    entries stay with the team they were made in. Refused, with the code left as it
    was: ``unknown``, ``used``, ``expired`` (as in ``redeem_invite``), ``same`` (already
    in that team with that role), ``link`` (a code that adds another account to this
    person: it is for that account) and ``revoked``.
    """
    if member.revoked:
        raise EnrolmentError("revoked")
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    invite = await session.get(Invite, normalised, with_for_update=True)
    if invite is None or invite.revoked_at is not None:
        raise EnrolmentError("unknown")
    if invite.used_at is not None:
        raise EnrolmentError("used")
    if invite.expires_at <= now:
        raise EnrolmentError("expired")
    if invite.person_id is not None:
        # Another person's link code is no code for this one.
        raise EnrolmentError("link" if invite.person_id == member.person_id else "unknown")
    if (invite.team_id, invite.role) == (member.team_id, member.role):
        raise EnrolmentError("same")
    claimed = await session.execute(
        update(Invite)
        .where(Invite.code == normalised, Invite.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise EnrolmentError("used")
    await session.execute(
        update(Person)
        .where(Person.id == member.person_id)
        .values(team_id=invite.team_id, role=invite.role)
    )
    return replace(member, team_id=invite.team_id, role=invite.role)


async def move_person(session: AsyncSession, person_id: int, team_id: str) -> None:
    """Put a person in another team, keeping their role (the terminal's local user
    whose team has left the config)."""
    await session.execute(update(Person).where(Person.id == person_id).values(team_id=team_id))


def new_pseudonym() -> str:
    return "w-" + secrets.token_hex(4)


async def set_language(session: AsyncSession, person_id: int, language: str) -> None:
    await session.execute(update(Person).where(Person.id == person_id).values(language=language))


async def set_default_area(session: AsyncSession, person_id: int, area: str | None) -> None:
    """The worker's usual area (an area id, ``"none"`` for none chosen, None: not asked)."""
    await session.execute(update(Person).where(Person.id == person_id).values(default_area=area))


async def get_shift_reminder(session: AsyncSession, person_id: int) -> str | None:
    result = await session.execute(select(Person.shift_reminder).where(Person.id == person_id))
    return result.scalar_one_or_none()


async def set_shift_reminder(session: AsyncSession, person_id: int, at: str | None) -> None:
    """Turn the end-of-shift reminder on at local ``"HH:MM"``, or off with None."""
    await session.execute(update(Person).where(Person.id == person_id).values(shift_reminder=at))


async def shift_reminder_candidates(session: AsyncSession) -> Sequence[tuple[int, str]]:
    """(person id, "HH:MM") of everyone not revoked who wants the end-of-shift reminder."""
    result = await session.execute(
        select(Person.id, Person.shift_reminder).where(
            Person.shift_reminder.is_not(None), Person.revoked_at.is_(None)
        )
    )
    return [(row[0], row[1] or "") for row in result.all()]


async def claim_shift_reminder(
    session: AsyncSession, person_id: int, day_start: datetime, now: datetime
) -> bool:
    """Mark today's reminder sent; False when it was sent since ``day_start`` (by this or
    another instance). A conditional UPDATE, like ``claim_draft_reminder``."""
    claimed = await session.execute(
        update(Person)
        .where(Person.id == person_id)
        .where((Person.shift_reminded_at.is_(None)) | (Person.shift_reminded_at < day_start))
        .values(shift_reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def logged_since(session: AsyncSession, person_id: int, since: datetime) -> bool:
    """Whether the person saved an entry (or was on one: ``recorded_at``) since ``since``."""
    result = await session.execute(
        select(Observation.id)
        .where(Observation.person_id == person_id, Observation.recorded_at >= since)
        .limit(1)
    )
    return result.first() is not None


def active_day(now: datetime) -> datetime:
    """The day ``touch_person`` records for ``now`` (midnight, in ``now``'s zone: UTC)."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def touched_today(member: Member, now: datetime) -> bool:
    """True when ``touch_person`` would change nothing (saves a statement per event)."""
    return member.last_active_on is not None and member.last_active_on >= active_day(now)


async def touch_person(session: AsyncSession, person_id: int, now: datetime) -> None:
    """Remember the last active *day* only: enough for reminders, not a surveillance log."""
    await session.execute(_TOUCH_PERSON, {"person": person_id, "day": active_day(now)})


# Statements of the capture path are built once and take their values as parameters:
# built per call, constructing and cache-keying them was about a tenth of the bot's CPU
# per update (bench/RESULTS.md, the profile). No Person object is loaded in a turn, so
# the session has nothing to synchronise.
_TOUCH_PERSON = (
    update(cast(Table, Person.__table__))
    .where(_PEOPLE.id == bindparam("person"))
    .where((_PEOPLE.last_active_on.is_(None)) | (_PEOPLE.last_active_on < bindparam("day")))
    .values(last_active_on=bindparam("day"))
)


async def update_chat(
    session: AsyncSession, transport: str, external_id: str, chat_id: str
) -> None:
    await session.execute(
        update(Identity)
        .where(Identity.transport == transport, Identity.external_id == external_id)
        .where(Identity.chat_id != chat_id)
        .values(chat_id=chat_id)
    )


# --- processed events --------------------------------------------------------------


async def first_time_seen(
    session: AsyncSession, transport: str, event_id: str, now: datetime
) -> bool:
    """Record an event id; False when it was recorded before (a redelivery).

    One ``INSERT ... ON CONFLICT DO NOTHING`` on both backends: a redelivery, and a
    concurrent second delivery of the same update, insert no row. (A look-up, a
    savepoint and an insert cost four round trips per event; see bench/RESULTS-earlier.md.)
    """
    result = await session.execute(
        _RECORD_EVENT.on(session),
        {"transport": transport, "event_id": event_id, "processed_at": now},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


class InsertIgnoring:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table``, built once for each backend:
    an event's hot path takes the built statement instead of building one."""

    def __init__(self, table: Any) -> None:
        self._built = {
            "postgresql": postgresql_insert(table).on_conflict_do_nothing(),
            "sqlite": sqlite_insert(table).on_conflict_do_nothing(),
        }

    def on(self, session: AsyncSession) -> Any:
        """The statement for the backend ``session`` is bound to."""
        dialect = session.get_bind().dialect.name
        return self._built["postgresql" if dialect == "postgresql" else "sqlite"]


_RECORD_EVENT = InsertIgnoring(ProcessedEvent.__table__)


# --- drafts ------------------------------------------------------------------------


async def load_draft(session: AsyncSession, person_id: int) -> Draft | None:
    # A statement built once (``session.get`` builds and keys a new one each time): a
    # step of every capture (bench/RESULTS.md, CPU per update).
    result = await session.execute(_LOAD_DRAFT, {"person": person_id})
    return result.scalar_one_or_none()


_LOAD_DRAFT = select(Draft).where(Draft.person_id == bindparam("person")).with_for_update()


async def draft_state(session: AsyncSession, person_id: int) -> dict[str, Any] | None:
    """The flow state of the person's draft, locked for this transaction (None: none).

    The capture path reads and writes the draft at every step: as a row of the table, not
    an ORM object, it skips the identity map and the unit of work's flush (about a sixth
    of the service's CPU per update, bench/RESULTS.md). Written back with
    ``store_draft``.
    """
    result = await session.execute(_DRAFT_STATE, {"person": person_id})
    state: dict[str, Any] | None = result.scalar_one_or_none()
    return state


_DRAFTS = cast(Table, Draft.__table__)  # a mapped class's table (typed as any FromClause)
_DRAFT_STATE = (
    select(_DRAFTS.c.state).where(_DRAFTS.c.person_id == bindparam("person")).with_for_update()
)
_INSERT_DRAFT = insert(_DRAFTS).values(
    person_id=bindparam("person"),
    state=bindparam("state"),
    transport=bindparam("transport"),
    chat_id=bindparam("chat_id"),
    created_at=bindparam("now"),
    updated_at=bindparam("now"),
    reminded_at=None,
)
_UPDATE_DRAFT = (
    update(_DRAFTS)
    .where(_DRAFTS.c.person_id == bindparam("person"))
    .values(
        state=bindparam("state"),
        transport=bindparam("transport"),
        chat_id=bindparam("chat_id"),
        updated_at=bindparam("now"),
        reminded_at=None,
    )
)


async def store_draft(
    session: AsyncSession,
    person_id: int,
    state: dict[str, Any],
    transport: str,
    chat_id: str,
    now: datetime,
    *,
    new: bool | None = None,
) -> None:
    """Keep the person's draft (its flow state), written as a table row (see
    ``draft_state``). ``new``: the caller read the draft in this transaction and found
    none (True) or one (False); None: not known, an UPDATE first and an INSERT when it
    found no row. An ORM ``Draft`` of the person loaded earlier in the session leaves the
    session, so a later look-up reads what was written."""
    loaded = session.identity_map.get(AsyncSession.identity_key(Draft, person_id))
    if loaded is not None:
        session.expunge(loaded)
    values = {
        "person": person_id,
        "state": state,
        "transport": transport,
        "chat_id": chat_id,
        "now": now,
    }
    if new is not True:
        updated = await session.execute(_UPDATE_DRAFT, values)
        if new is False or updated.rowcount == 1:  # type: ignore[attr-defined]
            return
    await session.execute(_INSERT_DRAFT, values)


async def claim_draft_reminder(session: AsyncSession, person_id: int, now: datetime) -> bool:
    """Mark a draft reminded; False when another process got there first.

    A conditional UPDATE: on PostgreSQL a concurrent second UPDATE waits for the first
    to commit, re-reads the row and matches nothing; SQLite serialises writers anyway.
    """
    claimed = await session.execute(
        update(Draft)
        .where(Draft.person_id == person_id, Draft.reminded_at.is_(None))
        .values(reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def delete_draft(session: AsyncSession, person_id: int) -> None:
    await session.execute(delete(Draft).where(Draft.person_id == person_id))


# --- drafts kept aside ---------------------------------------------------------------


async def kept_drafts(session: AsyncSession, person_id: int) -> Sequence[KeptDraft]:
    """The drafts a worker put aside, oldest first."""
    result = await session.execute(
        select(KeptDraft).where(KeptDraft.person_id == person_id).order_by(KeptDraft.id)
    )
    return result.scalars().all()


async def count_kept_drafts(session: AsyncSession, person_id: int) -> int:
    result = await session.execute(_COUNT_KEPT_DRAFTS, {"person": person_id})
    return int(result.scalar_one())


_COUNT_KEPT_DRAFTS = (
    select(func.count())
    .select_from(KeptDraft.__table__)
    .where(KeptDraft.__table__.c.person_id == bindparam("person"))
)


async def keep_draft(
    session: AsyncSession,
    person_id: int,
    state: dict[str, Any],
    transport: str,
    chat_id: str,
    now: datetime,
) -> KeptDraft:
    row = KeptDraft(
        person_id=person_id,
        state=state,
        transport=transport,
        chat_id=chat_id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def take_kept_draft(session: AsyncSession, kept_id: int, person_id: int) -> KeptDraft | None:
    """Remove and return one of the person's kept drafts (None: not theirs, or gone)."""
    if not is_row_id(kept_id):
        return None
    row = await session.get(KeptDraft, kept_id, with_for_update=True)
    if row is None or row.person_id != person_id:
        return None
    await session.delete(row)
    await session.flush()
    return row


async def last_codes(session: AsyncSession, person_id: int) -> tuple[str, str, str] | None:
    """Theme, group and signal of the person's newest entry still in use."""
    row = (await session.execute(_LAST_CODES, {"person": person_id})).first()
    return None if row is None else (row[0], row[1], row[2])


_OBSERVATIONS = Observation.__table__.c
_LAST_CODES = (
    select(_OBSERVATIONS.theme, _OBSERVATIONS.population_group, _OBSERVATIONS.signal)
    .where(_OBSERVATIONS.person_id == bindparam("person"), _OBSERVATIONS.withdrawn_at.is_(None))
    .order_by(_OBSERVATIONS.recorded_at.desc(), _OBSERVATIONS.id.desc())
    .limit(1)
)


async def idle_drafts(session: AsyncSession, older_than: datetime) -> Sequence[Draft]:
    """Drafts untouched since ``older_than`` whose worker has not been reminded yet."""
    result = await session.execute(
        select(Draft)
        .where(Draft.updated_at < older_than, Draft.reminded_at.is_(None))
        .order_by(Draft.updated_at)
    )
    return result.scalars().all()


# --- observations ---------------------------------------------------------------------


async def add_observation(session: AsyncSession, **values: Any) -> Observation:
    observation = Observation(**values)
    session.add(observation)
    await session.flush()
    return observation


async def recent_observations(
    session: AsyncSession, person_id: int, limit: int = 10, offset: int = 0
) -> Sequence[Observation]:
    result = await session.execute(
        select(Observation)
        .where(Observation.person_id == person_id, Observation.withdrawn_at.is_(None))
        .order_by(Observation.recorded_at.desc(), Observation.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return result.scalars().all()


# Row ids are INTEGER columns. A number from a button payload is client text: one outside
# this range names no row and must not reach the driver, which refuses to bind it.
MAX_ROW_ID = 2**31 - 1


def is_row_id(number: int) -> bool:
    return 0 < number <= MAX_ROW_ID


async def get_observation(session: AsyncSession, observation_id: int) -> Observation | None:
    if not is_row_id(observation_id):
        return None
    return await session.get(Observation, observation_id)


# --- small state --------------------------------------------------------------------


async def get_state(session: AsyncSession, key: str) -> str | None:
    row = await session.get(BotState, key)
    return row.value if row is not None else None


async def set_state(session: AsyncSession, key: str, value: str) -> None:
    row = await session.get(BotState, key)
    if row is None:
        session.add(BotState(key=key, value=value))
    else:
        row.value = value
    await session.flush()
