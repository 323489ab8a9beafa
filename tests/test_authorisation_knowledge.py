"""Who may do what on the knowledge path: the authorisation matrix extended, on the real
bot over the fake Telegram API (the style of tests/test_authorisation.py).

Actions:

* ``phenomenon``: ``/ilmio N title`` on an entry of the own team (hki-etsiva): team leads
  for their team, leaders for their region, admins; never workers.
* ``foreign``: the same on an entry of another region's team (vaasa-uppsok): only admins.
* ``propose``: ``/ehdotus P text`` on a phenomenon of the own region: leads, leaders, admins.
* ``move``: pressing a proposal's *Presented* button: leaders of the region and admins.
* ``metoo``: ``/minakin P``: every enrolled, not revoked person.
* ``where``: ``/missa N`` on someone else's entry they did not confirm: nobody.
* ``notice_make``: *Tee ilmiö* under an escalated entry's notice in the leadership
  channel, then the name as the next message: like ``/ilmio`` (leads, leaders, admins).
* ``notice_link``: *Liitä ilmiöön* -> the phenomenon's button (``kp:lk:N:P``): like
  ``/liita`` (leads, leaders, admins).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Config
from storage import knowledge, repo
from storage.admin import revoke_person
from storage.models import (
    Confirmation,
    Observation,
    Phenomenon,
    PhenomenonLink,
    Proposal,
    ProposalEvent,
)
from tests.conftest import FakeClock
from tests.support.escalation_helpers import Bot
from tests.support.fake_telegram import FakeTelegram, keyboard
from tests.support.telegram import telegram_config

A, R = "allowed", "refused"
ROLES = ("worker", "lead", "leader", "admin", "unenrolled", "revoked")
ACTIONS = (
    "phenomenon",
    "foreign",
    "propose",
    "move",
    "metoo",
    "where",
    "notice_make",
    "notice_link",
)
MATRIX: dict[str, tuple[str, ...]] = {
    #            phenomenon foreign propose move metoo where notice_make notice_link
    "worker": (R, R, R, R, A, R, R, R),
    "lead": (A, R, A, R, A, R, A, A),
    "leader": (A, R, A, A, A, R, A, A),
    "admin": (A, A, A, A, A, R, A, A),
    "unenrolled": (R, R, R, R, R, R, R, R),
    "revoked": (R, R, R, R, R, R, R, R),
}
USERS = {"worker": 1101, "lead": 2101, "leader": 3101, "admin": 4101, "unenrolled": 9101}
USERS["revoked"] = 5101
REPORTER, SWEDE = 1201, 1301


class World:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.entry_id = 0
        self.foreign_id = 0
        self.phenomenon_id = 0
        self.raised_id = 0

    async def setup(self) -> None:
        for role in ("worker", "lead", "leader", "admin", "revoked"):
            await self.enrol(USERS[role], "hki-etsiva", "worker" if role == "revoked" else role)
        await self.enrol(REPORTER, "hki-etsiva", "worker")
        await self.enrol(SWEDE, "vaasa-uppsok", "worker", "sv")
        self.bot.fake.user(USERS["unenrolled"], first_name="Vieras", language_code="fi")
        async with self.bot.rt.db.transaction() as session:
            revoked = await repo.find_member(session, "telegram", str(USERS["revoked"]))
            assert revoked is not None
            await revoke_person(session, revoked.pseudonym, "test", self.bot.clock())
        await self.bot.save_entry(REPORTER, "Yömaja täynnä jo iltakahdeksalta", "escalation.none")
        await self.bot.save_entry(SWEDE, "Härbärget fullt redan klockan åtta", "escalation.none")
        await self.bot.save_entry(
            REPORTER, "Asumispalvelu jätti nuoren ilman tukea", "escalation.leadership"
        )
        entries = await self.rows(Observation)
        self.entry_id, self.foreign_id = entries[0].id, entries[1].id
        self.raised_id = entries[2].id
        self.phenomenon_id = await self.new_phenomenon("Yömajat täynnä")

    async def new_phenomenon(self, title: str) -> int:
        async with self.bot.rt.db.transaction() as session:
            row = await knowledge.create_phenomenon(
                session,
                region="helsinki",
                team_id="hki-etsiva",
                theme="theme.housing",
                title=title,
                language="fi",
                actor_person_id=None,
                actor="test",
                now=self.bot.clock(),
            )
            return row.id

    async def enrol(self, user: int, team: str, role: str, lang: str = "fi") -> None:
        self.bot.fake.user(user, first_name="Testi", language_code=lang)
        code = await self.bot.rt.service.create_invite(team, role, timedelta(days=1))
        await self.bot.say(user, f"/start {code}")

    async def rows(self, model: type[Any], *where: Any) -> list[Any]:
        async with self.bot.rt.db.transaction() as session:
            query = select(model).where(*where).order_by(model.id)  # type: ignore[attr-defined]
            return list((await session.execute(query)).scalars().all())

    async def phenomena(self) -> int:
        return len(await self.rows(Phenomenon))

    async def _make(self, role: str, entry: int) -> str:
        before = await self.phenomena()
        await self.bot.say(USERS[role], f"/ilmio {entry} Ilmiö roolilta {role}")
        return A if await self.phenomena() == before + 1 else R

    async def phenomenon(self, role: str) -> str:
        return await self._make(role, self.entry_id)

    async def foreign(self, role: str) -> str:
        return await self._make(role, self.foreign_id)

    async def propose(self, role: str) -> str:
        text = f"Ehdotus roolilta {role}"
        await self.bot.say(USERS[role], f"/ehdotus {self.phenomenon_id} {text}")
        return A if await self.rows(Proposal, Proposal.text == text) else R

    async def move(self, role: str) -> str:
        text = f"Siirrettävä ({role})"
        await self.bot.say(USERS["admin"], f"/ehdotus {self.phenomenon_id} {text}", chat_id=-2001)
        [row] = await self.rows(Proposal, Proposal.text == text)
        calls = await self.bot.press(
            USERS[role],
            f"kp:mv:{row.id}:presented",
            chat_id=-2001,
            message_id=self._leaders_message(),
        )
        asked = any("toimielimelle" in (c.text or "") for c in calls)
        events = await self.rows(ProposalEvent, ProposalEvent.proposal_id == row.id)
        assert [e.status for e in events] == ["proposed"]
        return A if asked else R

    def _leaders_message(self) -> int:
        messages = self.bot.fake.bot_messages(-2001)
        if not messages:
            raise AssertionError("no message in the leadership chat")
        return int(messages[-1]["message_id"])

    async def metoo(self, role: str) -> str:
        before = len(await self.rows(Confirmation))
        await self.bot.say(USERS[role], f"/minakin {self.phenomenon_id}")
        return A if len(await self.rows(Confirmation)) == before + 1 else R

    async def notice_make(self, role: str) -> str:
        notice = next(
            m
            for m in reversed(self.bot.fake.bot_messages(-2001))
            if any(d == f"kp:mk:{self.raised_id}" for row in keyboard(m) for _, d in row)
        )
        before = await self.phenomena()
        await self.bot.press(
            USERS[role], f"kp:mk:{self.raised_id}", chat_id=-2001, message_id=notice["message_id"]
        )
        await self.bot.say(USERS[role], f"Ilmiö ilmoituksesta ({role})", chat_id=-2001)
        return A if await self.phenomena() == before + 1 else R

    async def notice_link(self, role: str) -> str:
        target = await self.new_phenomenon(f"Liitettävä ({role})")
        await self.bot.act(
            lambda: self.bot.fake.press(
                USERS[role], f"kp:lk:{self.raised_id}:{target}", chat_id=-2001, strict=False
            )
        )
        async with self.bot.rt.db.transaction() as session:
            linked = await session.get(PhenomenonLink, self.raised_id)
        return A if linked is not None and linked.phenomenon_id == target else R

    async def where(self, role: str) -> str:
        calls = await self.bot.say(USERS[role], f"/missa {self.entry_id}")
        shown = any("tietopolulla" in (c.text or "") for c in calls)
        return A if shown else R


@pytest.fixture
async def world(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[World]:
    async with FakeTelegram() as fake:
        bot = Bot(
            fake,
            telegram_config(
                make_config,
                fake,
                bodies=[{"id": "sote", "name": {"fi": "Sote-lautakunta"}, "level": "regional"}],
            ),
            clock,
        )
        await bot.start()
        try:
            w = World(bot)
            await w.setup()
            yield w
        finally:
            await bot.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_role_can_do_exactly_what_it_is_meant_to_on_the_knowledge_path(
    world: World,
) -> None:
    found = {role: tuple([await getattr(world, a)(role) for a in ACTIONS]) for role in ROLES}
    differences = [
        f"{role} {action}: expected {want}, was {got}"
        for role in ROLES
        for action, want, got in zip(ACTIONS, MATRIX[role], found[role], strict=True)
        if want != got
    ]
    assert not differences, "\n".join(differences)
