"""Seed data for the export, report, retention and admin tests.

``seed`` enrols people the way the bot does (an invite redeemed by a Telegram
identity with a distinctive chat id) and stores observations directly, with
escalation events, so every test starts from the same small, realistic world.
Chat ids and external ids are long and distinctive so that a leak into an
export is found by a plain substring search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.config import Config
from bot.service import Havainto
from storage import repo
from storage.db import Database
from storage.models import EscalationEvent, Observation

HETU = "131052-308T"  # a valid personal identity code (the standard example)


@dataclass
class World:
    db: Database
    service: Havainto
    people: dict[str, repo.Member] = field(default_factory=dict)
    external_ids: list[str] = field(default_factory=list)
    chat_ids: list[str] = field(default_factory=list)
    observations: dict[str, int] = field(default_factory=dict)


def observation(member: repo.Member, when: datetime, region: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "person_id": member.person_id,
        "team_id": member.team_id,
        "region": region,
        "area": None,
        "description": "Yömajasta käännytettiin nuoria.",
        "quote": None,
        "action": None,
        "theme": "theme.housing",
        "population_group": "group.youth",
        "signal": "signal.queues",
        "frequency": "frequency.recurring",
        "escalation": "escalation.none",
        "polarity": "polarity.problem",
        "task": None,
        "source": None,
        "scale": None,
        "observed_at": when,
        "recorded_at": when,
        "updated_at": when,
        "withdrawn_at": None,
        "transport": "telegram",
        "language": member.language,
        "flow_version": "1",
        "taxonomy_version": "2026.1",
    }
    row.update(values)
    return row


async def enrol(
    world: World, name: str, team: str, now: datetime, role: str = "worker", lang: str = "fi"
) -> repo.Member:
    number = 9_100_000_000 + len(world.people) * 7_777
    external, chat = str(number), str(number + 13)
    async with world.db.transaction() as session:
        invite = await repo.create_invite(session, team, role, now, timedelta(days=1))
        member = await repo.redeem_invite(
            session, invite.code, "telegram", external, chat, lang, now
        )
    world.people[name] = member
    world.external_ids.append(external)
    world.chat_ids.append(chat)
    return member


async def add(world: World, key: str, values: dict[str, Any]) -> int:
    async with world.db.transaction() as session:
        row = Observation(**values)
        session.add(row)
        await session.flush()
        world.observations[key] = row.id
        return row.id


async def add_status(
    world: World, observation_id: int, status: str, at: datetime, text: str | None = None
) -> None:
    async with world.db.transaction() as session:
        session.add(
            EscalationEvent(
                observation_id=observation_id,
                status=status,
                text=text,
                actor_person_id=None,
                created_at=at,
            )
        )


async def seed(config: Config, now: datetime) -> World:
    """Three workers in two regions, nine observations, escalations with a history.

    Helsinki (team hki-etsiva): anna (5 entries), ben (2, one withdrawn);
    Pohjanmaa (team vaasa-uppsok): cecilia (2, Swedish).
    """
    db = Database(config.database.url)
    service = Havainto(config, db, lambda: now)
    await service.prepare()
    world = World(db, service)
    anna = await enrol(world, "anna", "hki-etsiva", now - timedelta(days=400))
    ben = await enrol(world, "ben", "hki-etsiva", now - timedelta(days=400))
    cecilia = await enrol(world, "cecilia", "vaasa-uppsok", now - timedelta(days=400), lang="sv")
    day = timedelta(days=1)
    await add(
        world,
        "old",
        observation(
            anna,
            now - 800 * day,
            "helsinki",
            description="Vanha kirjaus: asuntojonot pitkät.",
            quote="Ei oo paikkaa mihin mennä.",
            action="Lisää tukiasuntoja.",
        ),
    )
    await add(
        world,
        "housing",
        observation(
            anna,
            now - 20 * day,
            "helsinki",
            area="kallio",
            quote="Mä oon jonottanut vuoden.",
            task="task.working_age",
            source="source.client",
            scale="scale.few",
        ),
    )
    await add(
        world,
        "shl48",
        observation(
            anna,
            now - 10 * day,
            "helsinki",
            theme="theme.violence",
            signal="signal.unrecognised",
            escalation="escalation.shl48",
            description=f"Asiakkaan ({HETU}) kohtelu palvelussa huolestuttaa.",
        ),
    )
    await add(
        world,
        "leadership",
        observation(
            anna,
            now - 5 * day,
            "helsinki",
            theme="theme.substance_mental",
            signal="signal.criteria",
            escalation="escalation.leadership",
            frequency="frequency.growing",
            description='=HYPERLINK("http://x") jonot päihdehoitoon',
        ),
    )
    await add(
        world,
        "good",
        observation(
            anna,
            now - 3 * day,
            "helsinki",
            theme="theme.early_support",
            polarity="polarity.good_practice",
            signal="signal.not_service_system",
            frequency="frequency.new",
        ),
    )
    await add(world, "ben1", observation(ben, now - 4 * day, "helsinki", area="itakeskus"))
    await add(
        world,
        "withdrawn",
        observation(ben, now - 2 * day, "helsinki", withdrawn_at=now - day),
    )
    await add(
        world,
        "vaasa1",
        observation(
            cecilia,
            now - 6 * day,
            "pohjanmaa",
            theme="theme.income",
            signal="signal.mismatch",
            description="Utkomststödet räcker inte.",
            language="sv",
        ),
    )
    await add(
        world,
        "vaasa2",
        observation(
            cecilia,
            now - 2 * day,
            "pohjanmaa",
            theme="theme.income",
            signal="signal.mismatch",
            escalation="escalation.leadership",
            quote="Jag har inte råd med mat.",
            language="sv",
        ),
    )
    shl48 = world.observations["shl48"]
    await add_status(world, shl48, "acknowledged", now - 9 * day)
    await add_status(world, shl48, "in_progress", now - 8 * day, "Selvitetään yksikön kanssa.")
    await add_status(world, shl48, "handled", now - 7 * day, "Ohjeistus korjattu, asia käsitelty.")
    return world
