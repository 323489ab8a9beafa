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
* ``pair``: ``/pari N`` on a teammate's entry of this week: everyone enrolled in the team.
* ``link``: ``/liita N P`` (an own-team entry to an own-team phenomenon): like ``/ilmio``.
* ``metoo_foreign``: the digest's *Minäkin* button (``kp:me:P``) on another region's team's
  phenomenon, pressed in the own team chat: only admins.
* ``move_foreign``: *Esitetty* on a proposal of another region (``kp:mv:P:presented``):
  only admins, never a leader of another region.
* ``answer_other``: answering someone else's body question (``kp:body``) and date question
  (typed) after a leader pressed *Esitetty*: nobody; the asker's question stays theirs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Config
from digests.periods import HELSINKI, week_of
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
    "pair",
    "link",
    "metoo_foreign",
    "move_foreign",
    "answer_other",
)
MATRIX: dict[str, tuple[str, ...]] = {
    #  phenomenon foreign propose move metoo where notice_make notice_link
    #  pair link metoo_foreign move_foreign answer_other
    "worker": (R, R, R, R, A, R, R, R, A, R, R, R, R),
    "lead": (A, R, A, R, A, R, A, A, A, A, R, R, R),
    "leader": (A, R, A, A, A, R, A, A, A, A, R, R, R),
    "admin": (A, A, A, A, A, R, A, A, A, A, A, A, R),
    "unenrolled": (R, R, R, R, R, R, R, R, R, R, R, R, R),
    "revoked": (R, R, R, R, R, R, R, R, R, R, R, R, R),
}
USERS = {"worker": 1101, "lead": 2101, "leader": 3101, "admin": 4101, "unenrolled": 9101}
USERS["revoked"] = 5101
REPORTER, SWEDE, ASKER = 1201, 1301, 3102


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
        await self.enrol(ASKER, "hki-etsiva", "leader")
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
        self.foreign_phenomenon = await self.new_phenomenon(
            "Härbärgen fulla", region="pohjanmaa", team="vaasa-uppsok"
        )
        # The team's digest in its chat (-1001): the message whose "Minäkin" button is
        # forged with another team's phenomenon.
        assert self.bot.rt.digests is not None
        await self.bot.rt.digests.send_weekly(week_of(self.bot.clock().astimezone(HELSINKI)))

    async def new_phenomenon(
        self, title: str, region: str = "helsinki", team: str = "hki-etsiva"
    ) -> int:
        async with self.bot.rt.db.transaction() as session:
            row = await knowledge.create_phenomenon(
                session,
                region=region,
                team_id=team,
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

    async def pair(self, role: str) -> str:
        await self.bot.say(USERS[role], f"/pari {self.entry_id}")
        found = await self.rows(
            Confirmation,
            Confirmation.kind == "pair",
            Confirmation.observation_id == self.entry_id,
        )
        return A if await self._is_theirs(found, role) else R

    async def _is_theirs(self, confirmations: list[Any], role: str) -> bool:
        if role == "unenrolled":
            return False
        async with self.bot.rt.db.transaction() as session:
            member = await repo.find_member(session, "telegram", str(USERS[role]))
        return member is not None and any(c.person_id == member.person_id for c in confirmations)

    async def link(self, role: str) -> str:
        target = await self.new_phenomenon(f"Komennolla liitettävä ({role})")
        await self.bot.say(USERS[role], f"/liita {self.entry_id} {target}")
        async with self.bot.rt.db.transaction() as session:
            linked = await session.get(PhenomenonLink, self.entry_id)
        return A if linked is not None and linked.phenomenon_id == target else R

    async def metoo_foreign(self, role: str) -> str:
        await self.bot.act(
            lambda: self.bot.fake.press(
                USERS[role], f"kp:me:{self.foreign_phenomenon}", chat_id=-1001, strict=False
            )
        )
        found = await self.rows(Confirmation, Confirmation.phenomenon_id == self.foreign_phenomenon)
        return A if await self._is_theirs(found, role) else R

    async def _proposal(self, text: str, phenomenon: int) -> int:
        async with self.bot.rt.db.transaction() as session:
            row = await knowledge.create_proposal(
                session,
                text=text,
                phenomenon_id=phenomenon,
                proposer_person_id=None,
                owner_person_id=None,
                actor="test",
                now=self.bot.clock(),
            )
            assert row is not None
            return row.id

    async def move_foreign(self, role: str) -> str:
        number = await self._proposal(f"Förslag ({role})", self.foreign_phenomenon)
        calls = await self.bot.act(
            lambda: self.bot.fake.press(
                USERS[role], f"kp:mv:{number}:presented", chat_id=-2001, strict=False
            )
        )
        asked = any("toimielimelle" in (c.text or "") for c in calls)
        events = await self.rows(ProposalEvent, ProposalEvent.proposal_id == number)
        assert [e.status for e in events] == ["proposed"]
        return A if asked else R

    async def answer_other(self, role: str) -> str:
        """A leader (ASKER) pressed *Esitetty*; ``role`` answers the body question and then
        types a day in the same chat. Allowed would be: the proposal moved on their answers."""
        number = await self._proposal(f"Kysytty ({role})", self.phenomenon_id)
        chat = -2001
        await self.bot.act(
            lambda: self.bot.fake.press(
                ASKER, f"kp:mv:{number}:presented", chat_id=chat, strict=False
            )
        )
        await self.bot.act(
            lambda: self.bot.fake.press(
                USERS[role], f"kp:body:{number}:sote", chat_id=chat, strict=False
            )
        )
        await self.bot.say(USERS[role], "1.11.2026", chat_id=chat)
        await self.bot.act(
            lambda: self.bot.fake.press(
                USERS[role], f"kp:nonote:{number}", chat_id=chat, strict=False
            )
        )
        events = await self.rows(ProposalEvent, ProposalEvent.proposal_id == number)
        moved = [e.status for e in events] != ["proposed"]
        # The asker's question is still theirs: they finish it themselves.
        await self.bot.act(
            lambda: self.bot.fake.press(ASKER, f"kp:body:{number}:sote", chat_id=chat, strict=False)
        )
        await self.bot.say(ASKER, "1.11.2026", chat_id=chat)
        await self.bot.act(
            lambda: self.bot.fake.press(ASKER, f"kp:nonote:{number}", chat_id=chat, strict=False)
        )
        events = await self.rows(ProposalEvent, ProposalEvent.proposal_id == number)
        assert [e.status for e in events][-1] == "presented" or moved
        return A if moved else R

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
