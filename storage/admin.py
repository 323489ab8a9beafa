"""Administration: teams, people and invites as an operator sees them, and revocation.

People are listed by pseudonym. Their chat identities are read only when the
operator asks for them explicitly (``with_identities``), and that look is
itself written to the audit trail by the caller. Revoking a person keeps their
entries (pseudonymous, as always) and ends their use of the bot: the service
refuses a revoked person on every transport, and a new invite code does not
bring them back. Only restoring them does, as the same person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.models import Draft, Identity, Invite, KeptDraft, Observation, Person, Team


@dataclass(frozen=True)
class TeamRow:
    id: str
    name: str
    region: str
    language: str
    people: int
    observations: int


@dataclass(frozen=True)
class IdentityRow:
    transport: str
    external_id: str
    chat_id: str


@dataclass(frozen=True)
class PersonRow:
    id: int
    pseudonym: str
    role: str
    team: str
    enrolled_at: datetime
    last_active_on: datetime | None
    revoked_at: datetime | None
    identities: tuple[IdentityRow, ...] | None = None


@dataclass(frozen=True)
class InviteRow:
    code: str
    team: str
    role: str
    person_id: int | None
    created_at: datetime
    expires_at: datetime
    state: str  # open, used, expired or revoked


class AdminError(Exception):
    """An operator's request that cannot be carried out; the message says why."""


async def list_teams(session: AsyncSession) -> list[TeamRow]:
    people = (
        select(Person.team_id, func.count().label("n"))
        .where(Person.revoked_at.is_(None))
        .group_by(Person.team_id)
        .subquery()
    )
    observations = (
        select(Observation.team_id, func.count().label("n"))
        .where(Observation.withdrawn_at.is_(None))
        .group_by(Observation.team_id)
        .subquery()
    )
    rows = await session.execute(
        select(Team, func.coalesce(people.c.n, 0), func.coalesce(observations.c.n, 0))
        .outerjoin(people, people.c.team_id == Team.id)
        .outerjoin(observations, observations.c.team_id == Team.id)
        .order_by(Team.region, Team.id)
    )
    return [
        TeamRow(team.id, team.name, team.region, team.language, int(p), int(o))
        for team, p, o in rows
    ]


async def list_people(
    session: AsyncSession, team: str | None = None, with_identities: bool = False
) -> list[PersonRow]:
    query = select(Person).order_by(Person.team_id, Person.id)
    if team is not None:
        query = query.where(Person.team_id == team)
    people = (await session.execute(query)).scalars().all()
    identities: dict[int, list[IdentityRow]] = {}
    if with_identities and people:
        rows = await session.execute(
            select(Identity)
            .where(Identity.person_id.in_([p.id for p in people]))
            .order_by(Identity.id)
        )
        for identity in rows.scalars():
            identities.setdefault(identity.person_id, []).append(
                IdentityRow(identity.transport, identity.external_id, identity.chat_id)
            )
    return [
        PersonRow(
            id=p.id,
            pseudonym=p.pseudonym,
            role=p.role,
            team=p.team_id,
            enrolled_at=p.created_at,
            last_active_on=p.last_active_on,
            revoked_at=p.revoked_at,
            identities=tuple(identities.get(p.id, ())) if with_identities else None,
        )
        for p in people
    ]


async def find_person(session: AsyncSession, key: str) -> Person:
    """A person by pseudonym (``w-1a2b3c4d``) or by number."""
    key = key.strip()
    person = (
        await session.execute(select(Person).where(Person.pseudonym == key))
    ).scalar_one_or_none()
    if person is None and key.isdigit():
        person = await session.get(Person, int(key))
    if person is None:
        raise AdminError(f"no person {key!r} (give a pseudonym or a number from `people list`)")
    return person


async def revoke_person(session: AsyncSession, key: str, actor: str, now: datetime) -> Person:
    """End a person's use of the bot; their entries stay. Their open draft and codes go."""
    person = await find_person(session, key)
    if person.revoked_at is not None:
        raise AdminError(f"{person.pseudonym} was already revoked")
    person.revoked_at = now
    drafts = await session.execute(delete(Draft).where(Draft.person_id == person.id))
    kept = await session.execute(delete(KeptDraft).where(KeptDraft.person_id == person.id))
    invites = await session.execute(
        update(Invite)
        .where(
            Invite.person_id == person.id,
            Invite.used_at.is_(None),
            Invite.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    await audit.record(
        session,
        actor,
        audit.PERSON_REVOKE,
        f"person={person.id} pseudonym={person.pseudonym} team={person.team_id} "
        f"drafts_erased={drafts.rowcount + kept.rowcount} invites_revoked={invites.rowcount}",  # type: ignore[attr-defined]
        1,
        now,
    )
    await session.flush()
    return person


async def restore_person(session: AsyncSession, key: str, actor: str, now: datetime) -> Person:
    """Give a revoked person their use of the bot back, as the same person: their earlier
    chat identities work again, with the same pseudonym and entries. (A revoked account
    cannot enrol anew with an invite code; this is the only way back.) Invite codes and
    the draft that went with the revocation stay gone."""
    person = await find_person(session, key)
    if person.revoked_at is None:
        raise AdminError(f"{person.pseudonym} is not revoked")
    revoked_at = person.revoked_at
    person.revoked_at = None
    await audit.record(
        session,
        actor,
        audit.PERSON_RESTORE,
        f"person={person.id} pseudonym={person.pseudonym} team={person.team_id} "
        f"revoked_at={revoked_at.isoformat(timespec='seconds')}",
        1,
        now,
    )
    await session.flush()
    return person


def invite_state(invite: Invite, now: datetime) -> str:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.used_at is not None:
        return "used"
    if invite.expires_at <= now:
        return "expired"
    return "open"


async def list_invites(
    session: AsyncSession, now: datetime, include_closed: bool = False
) -> list[InviteRow]:
    """Invites, newest first: only the ones still usable unless ``include_closed``."""
    query = select(Invite).order_by(Invite.created_at.desc(), Invite.code)
    if not include_closed:
        query = query.where(
            Invite.used_at.is_(None), Invite.revoked_at.is_(None), Invite.expires_at > now
        )
    invites = (await session.execute(query)).scalars().all()
    return [
        InviteRow(
            i.code, i.team_id, i.role, i.person_id, i.created_at, i.expires_at, invite_state(i, now)
        )
        for i in invites
    ]


async def revoke_invite(session: AsyncSession, code: str, actor: str, now: datetime) -> Invite:
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    invite = await session.get(Invite, normalised)
    if invite is None:
        raise AdminError(f"no invite {code!r}")
    state = invite_state(invite, now)
    if state != "open":
        raise AdminError(f"invite {normalised} is {state} already")
    invite.revoked_at = now
    await audit.record(
        session,
        actor,
        audit.INVITE_REVOKE,
        f"invite={normalised} team={invite.team_id} role={invite.role}",
        1,
        now,
    )
    return invite


async def record_identities_shown(
    session: AsyncSession, rows: Sequence[PersonRow], team: str | None, actor: str, now: datetime
) -> None:
    await audit.record(
        session,
        actor,
        audit.IDENTITIES_SHOWN,
        f"team={team or '*'} people={len(rows)}",
        sum(len(r.identities or ()) for r in rows),
        now,
    )
